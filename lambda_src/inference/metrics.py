"""CloudWatch Embedded Metric Format: metrics written as log lines, no API call per request.

Lambda's log agent extracts them; https://docs.aws.amazon.com/AmazonCloudWatch/latest/
monitoring/CloudWatch_Embedded_Metric_Format_Specification.html sets the limits used here.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

from inference.logs import write_line

DIMENSION = "ModelVersion"
# A second dimension set for metrics that alarms must count across every version behind
# the alias, whatever model each runs (the stacks' errors alarm does, for ServerErrors).
FUNCTION_DIMENSION = "FunctionName"
# The specification allows at most 100 values in one metric's array.
MAX_VALUES_PER_DOCUMENT = 100

MILLISECONDS = "Milliseconds"
COUNT = "Count"
NONE = "None"


@dataclass(frozen=True)
class Metric:
    name: str
    unit: str
    values: float | Sequence[float]


def documents(
    namespace: str,
    model_version: str,
    metrics: Sequence[Metric],
    *,
    properties: dict[str, object] | None = None,
    timestamp_ms: int | None = None,
    function_name: str | None = None,
) -> list[dict[str, object]]:
    """EMF documents for ``metrics``; value arrays over the limit continue in extra documents.

    With ``function_name``, the metrics are also published per function (all versions).
    """
    timestamp = timestamp_ms if timestamp_ms is not None else int(time.time() * 1000)
    chunked: list[tuple[Metric, list[list[float]]]] = []
    for metric in metrics:
        if isinstance(metric.values, int | float):
            chunked.append((metric, [[float(metric.values)]]))
        else:
            values = [float(v) for v in metric.values]
            chunked.append(
                (
                    metric,
                    [
                        values[i : i + MAX_VALUES_PER_DOCUMENT]
                        for i in range(0, len(values), MAX_VALUES_PER_DOCUMENT)
                    ],
                )
            )
    dimensions = [[DIMENSION], [FUNCTION_DIMENSION]] if function_name else [[DIMENSION]]
    extra: dict[str, object] = {FUNCTION_DIMENSION: function_name} if function_name else {}
    count = max((len(chunks) for _, chunks in chunked), default=0)
    out: list[dict[str, object]] = []
    for index in range(count):
        present = [(m, chunks[index]) for m, chunks in chunked if index < len(chunks)]
        doc: dict[str, object] = {
            "_aws": {
                "Timestamp": timestamp,
                "CloudWatchMetrics": [
                    {
                        "Namespace": namespace,
                        "Dimensions": dimensions,
                        "Metrics": [{"Name": m.name, "Unit": m.unit} for m, _ in present],
                    }
                ],
            },
            DIMENSION: model_version,
            **extra,
            **(properties or {}),
        }
        for metric, values in present:
            doc[metric.name] = values[0] if len(values) == 1 else values
        out.append(doc)
    return out


def emit(
    namespace: str,
    model_version: str,
    metrics: Sequence[Metric],
    *,
    properties: dict[str, object] | None = None,
    function_name: str | None = None,
) -> None:
    for doc in documents(
        namespace, model_version, metrics, properties=properties, function_name=function_name
    ):
        write_line(doc)
