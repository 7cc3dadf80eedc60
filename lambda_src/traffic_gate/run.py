"""The traffic gate against AWS: the golden sets from S3, the versions' answers from Lambda.

``run_gate`` reads the candidate's golden set (and the stable model's), checks each against
the SHA-256 the manifest pins, invokes the candidate and the stable version (qualified
ARNs: the real image, runtime and artifact) on their rows in batches, and hands the answers
to the decision (``serving.gate_decision.evaluate``). Before each batch it checks the
``Deadline``: with less than ``DEADLINE_MARGIN_MS`` of the function's time left it stops
with a ``GateError`` naming the deadline, so that the answer still reaches CloudFormation
or CodeDeploy.

Every request carries the gate's mark (``serving.reserved.GATE_KEY``): the version answers
it as any other, and keeps the golden rows out of its prediction logs, metrics and capture,
which the dashboards, alarms, the canary evaluator and the drift monitor read.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from serving.gate_decision import CANDIDATE_ROWS, STABLE_ROWS, Scored, Verdict, evaluate
from serving.golden_sets import (
    BINARY,
    Answers,
    GateError,
    Kind,
    instances,
    kind_of,
    same_kind,
    seen_by,
)
from serving.reserved import BATCH_KEY, GATE_KEY
from traffic_gate.settings import GateSettings, GoldenObject

# Time kept to send the answer (CloudFormation's response URL is given 30 s) before the
# function's own timeout: past it, CloudFormation waits for the custom resource's timeout
# and CodeDeploy an hour for the hook.
DEADLINE_MARGIN_MS = 30_000


class Deadline:
    """The gate's deadline: ``remaining_ms`` is the Lambda context's
    ``get_remaining_time_in_millis``; without it (offline, tests) there is none."""

    def __init__(
        self, remaining_ms: Callable[[], int] | None, margin_ms: int = DEADLINE_MARGIN_MS
    ) -> None:
        self.remaining_ms = remaining_ms
        self.margin_ms = margin_ms

    def check(self, before: str) -> None:
        """GateError when less than the margin is left before ``before`` starts."""
        if self.remaining_ms is None:
            return
        left = self.remaining_ms()
        if left < self.margin_ms:
            raise GateError(
                f"deadline: {left // 1000} s of the gate's time left before {before}, less "
                f"than the {self.margin_ms // 1000} s kept to send the answer"
            )


NO_DEADLINE = Deadline(None)


def read_golden(s3: Any, bucket: str, key: str, sha256: str) -> dict[str, Any]:
    data = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    digest = hashlib.sha256(data).hexdigest()
    if digest != sha256:
        raise GateError(
            f"s3://{bucket}/{key} has SHA-256 {digest}, the manifest pins {sha256}: "
            "the golden set changed after packaging"
        )
    golden: dict[str, Any] = json.loads(data)
    return golden


def gate_request(rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The body the gate sends: a batch, marked as the gate's own traffic."""
    return {BATCH_KEY: list(rows), GATE_KEY: True}


def invoke(
    lambda_client: Any,
    function: str,
    rows: Sequence[Mapping[str, Any]],
    batch_size: int,
    kind: Kind = BINARY,
    deadline: Deadline = NO_DEADLINE,
) -> Answers:
    """Every row through ``function`` (a qualified ARN), ``batch_size`` rows per request;
    the answers read as ``kind``'s (a model of another task answers other fields). Each
    batch starts only while ``deadline`` leaves time to answer."""
    answers = Answers([], None if kind.task == "regression" else [])
    for start in range(0, len(rows), batch_size):
        batch = list(rows[start : start + batch_size])
        where = f"{function} rows {start}-{start + len(batch) - 1}"
        deadline.check(where)
        response = lambda_client.invoke(
            FunctionName=function,
            InvocationType="RequestResponse",
            Payload=json.dumps(gate_request(batch)).encode(),
        )
        payload = response["Payload"].read()
        if response.get("FunctionError"):
            raise GateError(
                f"{function} failed on rows {start}-{start + len(batch) - 1}: "
                f"{response['FunctionError']}: {payload[:300]!r}"
            )
        body = json.loads(payload)
        predictions = body.get("predictions") if isinstance(body, dict) else None
        if body.get("statusCode") != 200 or not isinstance(predictions, list):
            raise GateError(
                f"{function} answered status {body.get('statusCode')!r} on rows "
                f"{start}-{start + len(batch) - 1}: {json.dumps(body)[:300]}"
            )
        if len(predictions) != len(batch):
            raise GateError(f"{function} answered {len(predictions)} of {len(batch)} rows")
        for answer in predictions:
            output, label = _read_answer(answer, kind, where)
            answers.outputs.append(output)
            if answers.labels is not None:
                answers.labels.append(label)
    return answers


def _read_answer(answer: Any, kind: Kind, where: str) -> tuple[Any, Any]:
    """(output, label) of one answer, or GateError naming what the answer lacks."""
    try:
        if kind.task == "regression":
            return float(answer["prediction"]), None
        if kind.task == "binary":
            return float(answer["probability"]), answer["prediction"]
        probabilities = answer["probabilities"]
        assert kind.classes is not None
        keys = [str(c) for c in kind.classes]
        if list(probabilities) != keys:
            raise KeyError("probabilities")
        return [float(probabilities[k]) for k in keys], answer["prediction"]
    except (KeyError, TypeError, ValueError, AttributeError):
        raise GateError(
            f"{where}: the answer {json.dumps(answer)[:200]} is not one of {kind.describe()}"
            " (is the version serving a model of another task or classes?)"
        ) from None


def run_gate(
    settings: GateSettings, *, lambda_client: Any, s3: Any, deadline: Deadline = NO_DEADLINE
) -> Verdict:
    def read(where: GoldenObject) -> dict[str, Any]:
        return read_golden(s3, where.bucket, where.key, where.sha256)

    golden = read(settings.golden)
    kind = kind_of(golden)

    def ask(function: str, rows: Sequence[Mapping[str, Any]]) -> Answers:
        return invoke(lambda_client, function, rows, settings.batch_size, kind, deadline)

    rows = instances(golden)
    candidate = ask(settings.candidate_function, rows)
    scored = []
    if settings.stable_function:
        stable = settings.stable_function
        other = read(settings.stable_golden) if settings.stable_golden is not None else None
        if other is not None:
            # Before any invocation of the stable side: its answers would not parse.
            same_kind(kind, kind_of(other))
        # Each golden set is compared on the rows the other version did not train on.
        scored.append(
            Scored(
                CANDIDATE_ROWS,
                golden.get("labels"),
                candidate,
                ask(stable, rows),
                seen_by(other, golden),
            )
        )
        if other is not None:
            other_rows = instances(other)
            scored.append(
                Scored(
                    STABLE_ROWS,
                    other.get("labels"),
                    ask(settings.candidate_function, other_rows),
                    ask(stable, other_rows),
                    seen_by(golden, other),
                )
            )
    return evaluate(
        golden,
        settings.runtime,
        candidate,
        scored,
        settings.tolerances,
        allow_unlabelled=settings.allow_unlabelled_golden,
    )
