"""Run commands at the same instant in separate processes (real processes, so real locks).

Children come from a fork server that has imported only this module and what the commands
need, so each race costs a fork, not an interpreter start; the test process itself (which
may hold threads of its own) is never forked.
"""

from __future__ import annotations

import contextlib
import io
import multiprocessing
from collections.abc import Callable, Sequence
from multiprocessing.connection import Connection
from multiprocessing.synchronize import Barrier
from pathlib import Path
from typing import Any

from tools.rollout.__main__ import main as rollout_main
from training import cli, versions

Outcome = tuple[int, str, str]
_CONTEXT = multiprocessing.get_context("forkserver")
_CONTEXT.set_forkserver_preload([__name__])
TIMEOUT = 60.0


def rollout(argv: Sequence[str], barrier: Barrier) -> Outcome:
    """``python -m tools.rollout <argv>`` released by ``barrier``: (exit, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    barrier.wait(timeout=TIMEOUT)
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = rollout_main(list(argv))
    return code, out.getvalue(), err.getvalue()


def write_version(root: Path, payload: bytes, force: bool, barrier: Barrier) -> Outcome:
    """What training.train / training.package do to write ``m/v1``: both writers have built
    their temporary directory (and passed the early existence check) before either renames."""

    def files(tmp: Path) -> dict[str, Any]:
        (tmp / "model.bin").write_bytes(payload)
        barrier.wait(timeout=TIMEOUT)
        return {"model_name": "m", "artifacts": {"raw": {"file": "model.bin"}}}

    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        code = cli.run(lambda: versions.write_version(root, "m", "v1", files, force=force))
    return code, "", err.getvalue()


def _child(job: Callable[..., Outcome], args: tuple[Any, ...], answer: Connection) -> None:
    answer.send(job(*args))
    answer.close()


def race(job: Callable[..., Outcome], *arguments: tuple[Any, ...]) -> list[Outcome]:
    """``job(*arguments[i], barrier)`` in one process each, all released together."""
    barrier = _CONTEXT.Barrier(len(arguments))
    pipes = [_CONTEXT.Pipe(duplex=False) for _ in arguments]
    children = [
        _CONTEXT.Process(target=_child, args=(job, (*args, barrier), sender))
        for args, (_, sender) in zip(arguments, pipes, strict=True)
    ]
    for child in children:
        child.start()
    for _, sender in pipes:
        sender.close()
    results = [receiver.recv() for receiver, _ in pipes]
    for child in children:
        child.join(timeout=TIMEOUT)
        assert child.exitcode == 0, child
    return results
