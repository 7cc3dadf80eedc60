"""Bounds of a request's answer that the handler keeps and the stack configures.

Lambda refuses a response payload over 6 MB (the caller then sees a 502, not our 4xx).
"""

# Lambda's limit on a synchronous request and response payload.
LAMBDA_PAYLOAD_LIMIT_BYTES = 6 * 1024 * 1024

# The largest MAX_BATCH_SIZE that can work at all: a 200 answer grows by one prediction
# per row, for churn (classes 0 and 1) at most 59 bytes as Lambda sends it
# ({"prediction":0,"probability":1.2345678901234567e-100}, and its comma, with a backslash
# before each of its 4 quotes in an HTTP body), as inference.answers.row_bytes measures it.
# 6 MiB less the envelope allows ~106,000 rows; rounded down. The handler refuses a larger
# MAX_BATCH_SIZE, the stack a larger function.max_batch_size;
# tests/reliability/test_stack_limits.py checks the arithmetic.
MAX_BATCH_SIZE_LIMIT = 100_000
# A request with "explain": true is bounded by MAX_EXPLAIN_ROWS (1 to MAX_BATCH_SIZE_LIMIT,
# default 100) and by the same 6 MB: inference.answers.row_bytes prices each row's
# explanation at its widest (features x classes numbers of 24 characters, names and
# labels as sent), so the 413 for an explained batch is exact too.
DEFAULT_MAX_EXPLAIN_ROWS = 100
