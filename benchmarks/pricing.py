"""Price figures used for the cost estimate, with their source and date.

AWS Lambda, us-east-1, x86_64, on-demand, as listed on https://aws.amazon.com/lambda/pricing/
(read 2026-11-25; first pricing tier, before the volume discounts above 6 billion
GB-seconds a month). CloudWatch PutMetricData requests: $0.01 per 1,000, as listed on
https://aws.amazon.com/cloudwatch/pricing/ (same date). Embedded Metric Format costs
only the log ingestion it adds, which both handlers pay for their log lines alike and
is left out.

CPU scaling assumption: Lambda allocates CPU in proportion to memory, one full vCPU at
1,769 MB. A single-threaded request measured on one core of this machine is taken as
the duration at 1,769 MB, and scaled by 1769 / memory below it. Billed duration is
rounded up to the next millisecond.
"""

from __future__ import annotations

import math

PRICE_PER_GB_SECOND = 0.0000166667
PRICE_PER_REQUEST = 0.20 / 1_000_000
PRICE_PER_PUT_METRIC_DATA = 0.01 / 1000
FULL_VCPU_MB = 1769
MEMORY_SIZES_MB = (512, 1024, 1769)


def cost_per_million(duration_ms: float, memory_mb: int, put_metric_calls: int = 0) -> float:
    """Dollars per million single-record predictions at ``memory_mb``."""
    scaled_ms = duration_ms * max(1.0, FULL_VCPU_MB / memory_mb)
    billed_seconds = math.ceil(scaled_ms) / 1000
    per_request = (
        PRICE_PER_REQUEST
        + billed_seconds * (memory_mb / 1024) * PRICE_PER_GB_SECOND
        + put_metric_calls * PRICE_PER_PUT_METRIC_DATA
    )
    return per_request * 1_000_000
