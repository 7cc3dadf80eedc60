"""``python -m tools.batch run``: a local table scored through the real handler, in the
item batches the state machine sends, by N worker processes; no AWS needed."""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import sys
import time
import uuid
from collections.abc import Iterable, Iterator
from itertools import repeat
from pathlib import Path
from typing import Any

from inference.limits import echo
from serving import artifacts
from tools.batch import RefusedError
from tools.batch.files import (
    Table,
    Writer,
    check_header,
    columns,
    output_format,
    read_table,
    render,
)
from tools.batch.progress import Progress

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "model_artifacts"
ANSWER_FIELDS_BY_TASK = {
    "binary": ("prediction", "probability"),
    "multiclass": ("prediction", "probabilities"),
    "regression": ("prediction",),
}


class _Context:
    """What Lambda passes a Map child's invocation: a version invoked by its qualified ARN."""

    def __init__(self, model: str, request_id: str) -> None:
        self.invoked_function_arn = f"arn:aws:lambda:local:000000000000:function:{model}:1"
        self.aws_request_id = request_id


_worker: dict[str, Any] = {}


def _init(
    env: dict[str, str],
    table_header: list[str] | None,
    batch_input: dict[str, Any],
    names: list[str],
) -> None:
    from tools.serve import load_handler

    # The handler's log lines and EMF documents are CloudWatch's: not this terminal's.
    sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - the worker's stdout for its life
    _worker.update(
        handler=load_handler(env).handler,
        header=table_header,
        batch_input=batch_input,
        model=env["MODEL_NAME"],
        names=names,
    )


Rendered = str | list[list[Any]]
# Item batches per task a worker reads from the file itself (CSV without quotes).
BATCHES_PER_SPAN = 8


def _score(task: tuple[Any, ...]) -> tuple[Rendered, int, int]:
    """A task: ``(first row, rows)``, one item batch; or ``(first row, path, from byte,
    to byte, rows per batch)``, lines of a CSV the worker reads and batches itself, so
    that the parent only writes. Its rows rendered, how many, how many refused."""
    if len(task) == 2:
        return _score_batch(*task)
    first, path, start, end, per_batch = task
    with open(path, "rb") as handle:
        handle.seek(start)
        lines = handle.read(end - start).decode("utf-8").split("\n")
    parts, done, refused = [], 0, 0
    for offset in range(0, len(lines), per_batch):
        rows = [line.split(",") for line in lines[offset : offset + per_batch]]
        rendered, rows_done, rows_refused = _score_batch(first + offset, rows)
        parts.append(rendered)
        done, refused = done + rows_done, refused + rows_refused
    if all(isinstance(part, str) for part in parts):
        return "".join(map(str, parts)), done, refused
    cells: list[list[Any]] = []
    for part in parts:
        assert not isinstance(part, str)
        cells.extend(part)
    return cells, done, refused


def _csv_spans(path: Path, per_batch: int) -> tuple[list[str], list[tuple[Any, ...]], int] | None:
    """The header and the worker tasks of a CSV whose lines are its rows (no quotes, no
    carriage returns, no blank lines: then a line split at commas is exactly what the
    csv module reads); None for any other CSV, which the parent reads with csv. Each task
    is BATCHES_PER_SPAN whole item batches, as the state machine batches: its end is
    guessed from the mean line length and moved to the exact line by counting newlines
    (in C), so that the parent never walks the rows."""
    data = path.read_bytes()
    if not data or b'"' in data or b"\r" in data or b"\n\n" in data:
        return None
    if not data.endswith(b"\n"):
        data += b"\n"
    rows = data.count(b"\n") - 1
    if rows < 1:
        return None
    start = data.index(b"\n") + 1
    header = data[: start - 1].decode("utf-8").split(",")
    step = per_batch * BATCHES_PER_SPAN
    per_row = (len(data) - start) / rows
    tasks: list[tuple[Any, ...]] = []
    for first in range(0, rows, step):
        lines = min(step, rows - first)
        end = _line_end(data, start, lines, per_row)
        tasks.append((first, str(path), start, end, per_batch))
        start = end + 1
    return header, tasks, rows


def _line_end(data: bytes, start: int, lines: int, per_row: float) -> int:
    """The offset of the newline that ends the ``lines``-th line from ``start``."""
    guess = min(len(data) - 1, start + max(0, int(lines * per_row) - 1))
    end = data.find(b"\n", guess)
    counted = data.count(b"\n", start, end + 1)  # lines in data[start : end + 1]
    while counted > lines:
        end = data.rfind(b"\n", start, end)
        counted -= 1
    while counted < lines:
        end = data.find(b"\n", end + 1)
        counted += 1
    return end


def _score_batch(start: int, rows: list[Any]) -> tuple[Rendered, int, int]:
    header = _worker["header"]
    if header is not None and _worker["batch_input"]["input_format"] == "csv":
        rows = list(map(dict, map(zip, repeat(header), rows)))
    # {"index": start + i, "row": row}, built in C (dict of two key-value pairs).
    items = list(
        map(
            dict,
            zip(
                zip(repeat("index"), range(start, start + len(rows))),
                zip(repeat("row"), rows),
                strict=True,
            ),
        )
    )
    event = {"Items": items, "BatchInput": _worker["batch_input"]}
    context = _Context(_worker["model"], f"local-{uuid.uuid4()}")
    answer = _worker["handler"](event, context)
    if answer.get("statusCode") != 200:
        raise RuntimeError(f"the handler refused a whole batch: {answer.get('error')}")
    rows_out: list[dict[str, Any]] = answer["rows"]
    refused = sum(1 for row in rows_out if "error" in row)
    rendered = render(_worker["batch_input"]["output_format"], _worker["names"], rows_out)
    return rendered, len(rows_out), refused


def model_version(model: str, version: str) -> Path:
    directory = ARTIFACTS / model
    known = artifacts.versions(directory) if directory.is_dir() else []
    if version not in known:
        have = (
            f"it has {', '.join(known)}" if known else f"no model {echo(model)} under {ARTIFACTS}"
        )
        raise RefusedError(f"unknown version {echo(version)} of {echo(model)}: {have}")
    return directory / version


def run(
    model: str,
    version: str,
    input_path: Path,
    output_path: Path,
    *,
    workers: int,
    rows_per_invocation: int,
    key_column: str | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Score ``input_path`` into ``output_path``; returns counts and timing."""
    from tools.serve import default_runtime, model_env

    directory = model_version(model, version)
    manifest = artifacts.load_manifest(directory)
    features = [entry["name"] for entry in manifest["features"]]
    task = manifest.get("task", "binary")
    out_format = output_format(_input_format(input_path), str(output_path))
    try:
        spans = _csv_spans(input_path, rows_per_invocation) if input_path.suffix == ".csv" else None
        table = Table("csv", spans[0], []) if spans else read_table(input_path)
    except (OSError, UnicodeDecodeError) as exc:
        raise RefusedError(f"input {input_path} is unreadable: {exc}") from None
    if table.header is not None:
        check_header(table.header, features, key_column)
    runtime, _ = default_runtime(model, version)
    env = model_env(model, version, runtime)
    batch_input = {
        "batch_scoring": True,
        "run_id": f"local-{uuid.uuid4().hex[:12]}",
        "model_version": version,
        "input_format": table.format,
        "output_format": out_format,
        **({"key_column": key_column} if key_column else {}),
    }
    names = columns("key" if key_column else "position", ANSWER_FIELDS_BY_TASK[task])
    total = spans[2] if spans else len(table.rows)
    started = time.perf_counter()
    bar = Progress(total) if progress else None
    writer = Writer(output_path, out_format, names)
    done = refused = 0
    try:
        tasks: Iterable[tuple[Any, ...]] = (
            spans[1]
            if spans
            else (
                (start, table.rows[start : start + rows_per_invocation])
                for start in range(0, len(table.rows), rows_per_invocation)
            )
        )
        batches = _answers(tasks, table.header, env, batch_input, names, workers)
        for rendered, rows, rows_refused in batches:
            writer.write_rendered(rendered)
            done += rows
            refused += rows_refused
            if bar is not None:
                bar.update(done, f"{refused:,} refused" if refused else "")
    finally:
        writer.close()
    if bar is not None:
        bar.finish()
    elapsed = time.perf_counter() - started
    return {"rows": done, "refused": refused, "seconds": elapsed, "run_id": batch_input["run_id"]}


def _input_format(path: Path) -> str:
    from tools.batch.files import format_of

    return format_of(str(path), what="input")


def _answers(
    tasks: Iterable[tuple[Any, ...]],
    header: list[str] | None,
    env: dict[str, str],
    batch_input: dict[str, Any],
    names: list[str],
    workers: int,
) -> Iterator[tuple[Rendered, int, int]]:
    if workers == 1:
        saved = sys.stdout
        try:
            _init(env, header, batch_input, names)
            for item in tasks:
                yield _score(item)
        finally:
            with contextlib.suppress(Exception):
                sys.stdout.close()
            sys.stdout = saved
        return
    with multiprocessing.get_context(_start_method()).Pool(
        workers, initializer=_init, initargs=(env, header, batch_input, names)
    ) as pool:
        yield from pool.imap(_score, tasks, chunksize=2)


def _start_method() -> str:
    """fork for a single-threaded parent on Linux (the command's own): a worker starts
    with the parent's modules instead of a fresh interpreter's imports, half a second of
    a short run with spawn. spawn otherwise: forking a process with other threads (a test
    runner's, a library's pool) can deadlock the child."""
    try:
        single = len(os.listdir("/proc/self/task")) == 1
    except OSError:
        single = False
    return "fork" if single and sys.platform == "linux" else "spawn"
