"""Batch scoring: a whole table scored by one model version, locally or on Step Functions.

``python -m tools.batch run`` scores a local file through the real handler, in the item
batches the state machine sends; ``start``, ``status``, ``wait`` and ``fetch`` drive the
deployed batch-scoring state machine (docs/batch-scoring.md).
"""

# Exit statuses: 0 done, 2 refused (bad input, unknown version, AWS refused the request),
# 3 the run failed (its execution failed, timed out or was aborted).
EXIT_REFUSED = 2
EXIT_RUN_FAILED = 3
# Rows per handler invocation when cdk.json's batch_scoring block does not say.
DEFAULT_ROWS_PER_INVOCATION = 500


class RefusedError(Exception):
    """Input the command refuses: the message names the bad value; exit 2."""
