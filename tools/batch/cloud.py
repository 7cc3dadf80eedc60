"""``python -m tools.batch start|status|wait|fetch``: the deployed batch-scoring state machine.

The state machine's ARN is the inference stack's output ``BatchScoringStateMachineArn``;
the function is the one behind the stack's ``AliasArn``. ``start`` pins one published
version for the whole run: ``--version N``, or the version the alias's stable side serves
at start (the alias's ``FunctionVersion``; a canary's weighted version is never chosen).

The ResultWriter writes ``<prefix>/<map run id>/manifest.json``, whose ``ResultFiles``
list the ``SUCCEEDED``, ``FAILED`` and ``PENDING`` files (JSON arrays, or JSON Lines), one
entry per child execution with its ``Input`` and ``Output`` as JSON text
(https://docs.aws.amazon.com/step-functions/latest/dg/input-output-resultwriter.html).
``fetch`` reads them back into one file, one row per input row, by position (or key).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

from inference.limits import echo
from tools.batch import EXIT_RUN_FAILED, RefusedError
from tools.batch.files import FORMATS, Writer, check_header, columns, format_of
from tools.batch.progress import Progress

STATE_MACHINE_OUTPUT = "BatchScoringStateMachineArn"
ALIAS_OUTPUT = "AliasArn"
TERMINAL = {"SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED"}
# Bytes of a CSV object read to check its header row.
HEADER_BYTES = 65_536


def parse_s3(uri: str, *, what: str) -> tuple[str, str]:
    if not uri.startswith("s3://") or ("/" not in uri[5:] and not uri[5:]):
        raise RefusedError(f"{what} {echo(uri)} is not an s3://BUCKET/KEY address")
    bucket, _, key = uri[5:].partition("/")
    if not bucket:
        raise RefusedError(f"{what} {echo(uri)} names no bucket")
    return bucket, key


class Aws:
    """The four clients a command uses (tests pass botocore-stubbed ones)."""

    def __init__(self, stepfunctions: Any, lambda_: Any, cloudformation: Any, s3: Any) -> None:
        self.sfn, self.lam, self.cfn, self.s3 = stepfunctions, lambda_, cloudformation, s3


def _errors() -> tuple[type[Exception], ...]:
    from botocore.exceptions import BotoCoreError, ClientError

    return (BotoCoreError, ClientError)


def _code(exc: Exception) -> str:
    response = getattr(exc, "response", None) or {}
    return str(response.get("Error", {}).get("Code", type(exc).__name__))


def outputs_of(aws: Aws, stack: str) -> dict[str, str]:
    from tools.stack_outputs import stack_outputs

    try:
        outputs = stack_outputs(aws.cfn, stack)
    except _errors() as exc:
        raise RefusedError(f"cannot read stack {stack}: {exc}") from None
    if STATE_MACHINE_OUTPUT not in outputs:
        raise RefusedError(
            f"stack {stack} has no {STATE_MACHINE_OUTPUT} output: batch scoring is off for "
            "this model (cdk.json batch_scoring.enabled), or not deployed yet"
        )
    return outputs


def resolve_version(aws: Aws, alias_arn: str, version: str | None) -> tuple[str, dict[str, Any]]:
    """The function version to pin, and its configuration."""
    function, _, alias = alias_arn.rpartition(":")
    if version is None:
        try:
            described = aws.lam.get_alias(FunctionName=function, Name=alias)
        except _errors() as exc:
            raise RefusedError(f"cannot read the alias {alias_arn}: {exc}") from None
        version = str(described["FunctionVersion"])
    elif not (version.isascii() and version.isdigit()):
        raise RefusedError(f"--version {echo(version)} is not a published version number (e.g. 7)")
    try:
        config = aws.lam.get_function_configuration(FunctionName=function, Qualifier=version)
    except _errors() as exc:
        if _code(exc) == "ResourceNotFoundException":
            raise RefusedError(
                f"unknown version {echo(version)} of {function}: not published"
            ) from None
        raise RefusedError(f"cannot read version {version} of {function}: {exc}") from None
    return version, config


def check_input(
    aws: Aws, uri: str, fmt: str | None, features: list[str] | None, key_column: str | None
) -> tuple[dict[str, str], str]:
    """The execution's ``input`` object and format; refuses an unreadable input and a CSV
    header that does not match ``features``."""
    bucket, key = parse_s3(uri, what="--input")
    if key == "" or key.endswith("/"):
        # The state machine's ItemReader reads one object (s3:getObject): a prefix would
        # fail the run at its first state.
        raise RefusedError(
            f"--input {echo(uri)} is a prefix: a run scores one object; start one run per "
            "object under it"
        )
    if fmt is None:
        fmt = format_of(key, what="--input")
    try:
        if fmt == "csv" and features is not None:
            head = aws.s3.get_object(Bucket=bucket, Key=key, Range=f"bytes=0-{HEADER_BYTES - 1}")
            first = head["Body"].read().decode("utf-8", errors="replace").splitlines()
            if not first:
                raise RefusedError(f"--input {echo(uri)} is empty: expected a CSV header row")
            import csv

            header = next(csv.reader([first[0]]))
            try:
                check_header(header, features, key_column)
            except RefusedError as exc:
                raise RefusedError(f"--input {echo(uri)}: {exc}") from None
        else:
            aws.s3.head_object(Bucket=bucket, Key=key)
    except _errors() as exc:
        raise RefusedError(f"--input {echo(uri)} is unreadable: {exc}") from None
    return {"bucket": bucket, "key": key, "format": fmt}, fmt


def start(
    aws: Aws,
    stack: str,
    input_uri: str,
    output_uri: str,
    *,
    version: str | None,
    fmt: str | None,
    key_column: str | None,
    features_of: Callable[[str], list[str] | None],
    out: TextIO,
) -> str:
    outputs = outputs_of(aws, stack)
    pinned, config = resolve_version(aws, outputs[ALIAS_OUTPUT], version)
    variables = (config.get("Environment") or {}).get("Variables") or {}
    model_version = variables.get("MODEL_VERSION", "")
    source, fmt = check_input(aws, input_uri, fmt, features_of(model_version), key_column)
    out_bucket, out_prefix = parse_s3(output_uri, what="--output")
    run_id = f"batch-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}-{uuid.uuid4().hex[:8]}"
    execution_input = {
        "input": source,
        "output": {"bucket": out_bucket, "prefix": out_prefix},
        "function_version": pinned,
        "run_id": run_id,
        "model_version": model_version,
        # Always present: the state machine copies it into every batch's BatchInput (a
        # JSONPath to a missing key would fail the run); null when rows go by position.
        "key_column": key_column or None,
    }
    try:
        started = aws.sfn.start_execution(
            stateMachineArn=outputs[STATE_MACHINE_OUTPUT],
            name=run_id,
            input=json.dumps(execution_input),
        )
    except _errors() as exc:
        raise RefusedError(f"Step Functions refused the run: {exc}") from None
    arn = str(started["executionArn"])
    print(f"execution {arn}", file=out)
    print(f"function version {pinned} (model {model_version or 'unknown'}), run {run_id}", file=out)
    return arn


def describe(aws: Aws, execution: str) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """DescribeExecution, and DescribeMapRun of its map run (None before it starts)."""
    try:
        described = aws.sfn.describe_execution(executionArn=execution)
        runs = aws.sfn.list_map_runs(executionArn=execution).get("mapRuns", [])
        map_run = aws.sfn.describe_map_run(mapRunArn=runs[0]["mapRunArn"]) if runs else None
    except _errors() as exc:
        if _code(exc) in ("ExecutionDoesNotExist", "InvalidArn"):
            raise RefusedError(f"no execution {echo(execution)}: {_code(exc)}") from None
        raise RefusedError(f"cannot read execution {echo(execution)}: {exc}") from None
    return described, map_run


def summary(described: dict[str, Any], map_run: dict[str, Any] | None) -> str:
    status = described["status"]
    if map_run is None:
        return f"{status}: map run not started"
    items = map_run.get("itemCounts", {})
    return (
        f"{status}: {items.get('succeeded', 0):,} of {items.get('total', 0):,} items succeeded, "
        f"{items.get('failed', 0):,} failed, {items.get('running', 0):,} running "
        f"(map run {map_run.get('status', '?')})"
    )


def failure(described: dict[str, Any]) -> str:
    return (
        f"the run {described['status']}: {described.get('error', 'no error')}: "
        f"{described.get('cause', 'no cause given')}"
    )


def status(aws: Aws, execution: str, out: TextIO) -> int:
    described, map_run = describe(aws, execution)
    print(summary(described, map_run), file=out)
    if described["status"] in TERMINAL - {"SUCCEEDED"}:
        print(f"error: {failure(described)}", file=sys.stderr)
        return EXIT_RUN_FAILED
    return 0


def wait(
    aws: Aws,
    execution: str,
    out: TextIO,
    *,
    poll_seconds: float,
    sleep: Callable[[float], None] = time.sleep,
    progress_out: TextIO | None = None,
) -> int:
    bar: Progress | None = None
    while True:
        described, map_run = describe(aws, execution)
        if map_run is not None:
            items = map_run.get("itemCounts", {})
            if bar is None:
                bar = Progress(int(items.get("total", 0)), "items", progress_out)
            bar.total = int(items.get("total", 0)) or bar.total
            done = int(items.get("succeeded", 0)) + int(items.get("failed", 0))
            bar.update(done, f"{items.get('failed', 0):,} failed")
        if described["status"] in TERMINAL:
            break
        sleep(poll_seconds)
    if bar is not None:
        bar.finish()
    print(summary(described, map_run), file=out)
    if described["status"] != "SUCCEEDED":
        print(f"error: {failure(described)}", file=sys.stderr)
        return EXIT_RUN_FAILED
    return 0


def _result_entries(aws: Aws, bucket: str, key: str) -> list[dict[str, Any]]:
    text = aws.s3.get_object(Bucket=bucket, Key=key)["Body"].read().decode("utf-8")
    if text.lstrip().startswith("["):
        entries: list[dict[str, Any]] = json.loads(text)
        return entries
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def _payload(entry: dict[str, Any]) -> Any:
    output = entry.get("Output")
    value = json.loads(output) if isinstance(output, str) else output
    # The optimized lambda:invoke integration wraps the function's answer in Payload.
    if isinstance(value, dict) and "Payload" in value and "rows" not in value:
        value = value["Payload"]
    return value


def _failed_rows(entry: dict[str, Any]) -> list[dict[str, Any]]:
    """One error row per item of a batch that failed (its input is in the entry)."""
    raw = entry.get("Input")
    batch = json.loads(raw) if isinstance(raw, str) else raw or {}
    error = {
        "code": "batch_failed",
        "message": f"{entry.get('Error', 'failed')}: {entry.get('Cause', '')}"[:500],
    }
    rows = []
    key_column = (batch.get("BatchInput") or {}).get("key_column")
    for offset, item in enumerate(batch.get("Items") or []):
        if isinstance(item, dict) and set(item) == {"index", "row"}:
            rows.append({"position": item["index"], "error": error})
        elif key_column and isinstance(item, dict) and key_column in item:
            rows.append({"key": item[key_column], "error": error})
        else:
            rows.append({"position": offset, "error": error})
    return rows


def fetch(aws: Aws, execution: str, to: Path, out: TextIO) -> int:
    described, map_run = describe(aws, execution)
    if map_run is None:
        raise RefusedError(f"execution {echo(execution)} has no map run yet: nothing to fetch")
    if described["status"] not in TERMINAL:
        raise RefusedError(f"the run is {described['status']}: wait for it, then fetch")
    execution_input = json.loads(described.get("input") or "{}")
    destination = execution_input.get("output") or {}
    bucket, prefix = str(destination.get("bucket")), str(destination.get("prefix", ""))
    fmt = (execution_input.get("input") or {}).get("format", "jsonl")
    out_format = format_of(str(to), what="--to")
    if out_format not in ({fmt} | ({"jsonl"} if fmt == "parquet" else set())):
        raise RefusedError(
            f"--to {echo(str(to))}: a {fmt} input is written as {fmt}"
            + (" or jsonl" if fmt == "parquet" else "")
        )
    run_id = str(map_run["mapRunArn"]).rsplit(":", 1)[-1]
    key = (
        f"{prefix.rstrip('/')}/{run_id}/manifest.json"
        if prefix.strip("/")
        else f"{run_id}/manifest.json"
    )
    try:
        manifest = json.loads(aws.s3.get_object(Bucket=bucket, Key=key)["Body"].read())
        files = manifest.get("ResultFiles", {})
        rows: list[dict[str, Any]] = []
        failed_batches = 0
        for entry_file in files.get("SUCCEEDED", []):
            for entry in _result_entries(aws, bucket, entry_file["Key"]):
                payload = _payload(entry)
                if isinstance(payload, dict) and isinstance(payload.get("rows"), list):
                    rows.extend(payload["rows"])
                    continue
                # The function refused the whole batch (an answer without rows): each of
                # its rows gets that error, as a failed batch's do.
                failed_batches += 1
                error = payload.get("error") if isinstance(payload, dict) else None
                message = error.get("message") if isinstance(error, dict) else str(payload)
                rows.extend(_failed_rows({**entry, "Error": "refused", "Cause": message}))
        for entry_file in files.get("FAILED", []) + files.get("PENDING", []):
            for entry in _result_entries(aws, bucket, entry_file["Key"]):
                failed_batches += 1
                rows.extend(_failed_rows(entry))
    except _errors() as exc:
        raise RefusedError(f"cannot read the results at s3://{bucket}/{key}: {exc}") from None
    keyed = any("key" in row for row in rows)
    if not keyed:
        rows.sort(key=lambda row: row["position"])
    fields = {name for row in rows for name in row}
    writer = Writer(to, out_format, columns("key" if keyed else "position", fields))
    writer.write(rows)
    writer.close()
    refused = sum(1 for row in rows if "error" in row)
    print(
        f"{len(rows):,} rows ({refused:,} with an error, {failed_batches} failed batches) "
        f"from s3://{bucket}/{key}: {to}",
        file=out,
    )
    return 0 if described["status"] == "SUCCEEDED" else EXIT_RUN_FAILED


def _features_of(model: str) -> Callable[[str], list[str] | None]:
    from tools.batch.local import ARTIFACTS

    def features(version: str) -> list[str] | None:
        path = ARTIFACTS / model / version / "manifest.json"
        if not version or not path.is_file():
            return None  # not trained here: the handler still refuses each bad row
        return [entry["name"] for entry in json.loads(path.read_text())["features"]]

    return features


def main(args: argparse.Namespace, aws: Aws | None = None, out: TextIO | None = None) -> int:
    from stacks.config import load_committed
    from stacks.settings import ConfigError, stack_name_of

    out = out or sys.stdout
    try:
        config = load_committed(args.env).model_named(args.model)
    except (ConfigError, ValueError) as exc:
        raise RefusedError(str(exc)) from None
    stack = stack_name_of(config)
    if aws is None:
        from tools.stack_outputs import clients

        aws = Aws(*clients(args.region, "stepfunctions", "lambda", "cloudformation", "s3"))
    if args.command == "start":
        start(
            aws,
            stack,
            args.input,
            args.output,
            version=args.version,
            fmt=args.format,
            key_column=args.key_column,
            features_of=_features_of(config.model.model_name),
            out=out,
        )
        return 0
    if args.command == "status":
        return status(aws, args.execution, out)
    if args.command == "wait":
        return wait(aws, args.execution, out, poll_seconds=args.poll_seconds)
    assert args.command == "fetch"
    return fetch(aws, args.execution, args.to, out)


__all__ = ["FORMATS", "Aws", "fetch", "main", "start", "status", "wait"]
