"""One safe way to change a tracked file or directory: cdk.json, a model version.

Two commands that change the same thing at once must never both say "wrote" while one
change is lost, and an edit must change only what it means to change. Every writer goes
through this module:

- ``exclusive(lock_file)``: an exclusive ``fcntl.flock`` on a lock file beside the target,
  taken without blocking forever. A writer that finds it held is refused (``BusyError``,
  exit 2) with a message naming the holder: its pid, host, command line and since when
  (the holder writes them into the lock file; the refused writer reads them back). The
  kernel releases a flock when its process dies, so a crash leaves no stale lock; the file
  itself is removed on release, while still locked, and a taker checks it locked the file
  that is still at the path (else it retries), so removing it never lets two in.
- ``edit(path)``: the lock, then the file's bytes as read. ``Edit.replace(text)`` checks,
  under the lock, that the file still has those bytes (a compare-and-swap against writers
  that do not take the lock: an editor, a ``git checkout``; ``ChangedError`` otherwise),
  then writes atomically (temporary file in the same directory, fsync, ``os.replace``) to
  the symlink's target, keeping its mode: a symlinked cdk.json stays a symlink.
- ``replace_json_value(text, keys, value)``: a JSON document with one value re-rendered in
  place, every byte outside it as it was (formatting, key order, non-ASCII text).

Why here: training writes model versions and tools edit cdk.json; tools may import
training, training may not import tools, and neither belongs in the deployed library. The
module uses the standard library only, so anything above training can take it.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import errno
import fcntl
import json
import os
import socket
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DIRECTORY_LOCK = ".lock"
MAX_HOLDER_BYTES = 4096
MAX_COMMAND_CHARS = 300
_POLL_SECONDS = 0.05
_UNNAMED_GRACE_SECONDS = 1.0
_JSON_SPACE = " \t\n\r"


class TrackedError(Exception):
    """A change refused before anything was written; the message names the file and why."""


class BusyError(TrackedError):
    """Another writer holds the lock."""


class ChangedError(TrackedError):
    """The file changed between reading it and replacing it."""


def lock_file_for(target: Path) -> Path:
    """``.<name>.lock`` beside the file a path resolves to (through symlinks), so that
    every path to one file shares one lock."""
    real = Path(os.path.realpath(target))
    return real.with_name(f".{real.name}.lock")


def holder() -> dict[str, Any]:
    """Who this process is, as written into a lock file it holds."""
    return {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "command": " ".join(sys.orig_argv)[:MAX_COMMAND_CHARS],
        "since": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }


def describe_holder(lock_file: Path) -> str:
    """The holder recorded in ``lock_file``, for a refusal message (bounded)."""
    return _recorded_holder(lock_file) or (
        "another writer (it has not recorded itself yet, or has just finished)"
    )


def _recorded_holder(lock_file: Path) -> str | None:
    try:
        with lock_file.open("rb") as stream:
            raw = stream.read(MAX_HOLDER_BYTES)
        recorded = json.loads(raw.decode("utf-8"))
        pid, host = int(recorded["pid"]), str(recorded["host"])[:100]
        command, since = str(recorded["command"])[:MAX_COMMAND_CHARS], str(recorded["since"])[:40]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return f"pid {pid} on {host} ({command}), holding it since {since}"


@contextlib.contextmanager
def exclusive(
    lock_file: Path, *, what: str | None = None, wait_seconds: float = 0.0
) -> Iterator[None]:
    """Hold the exclusive lock ``lock_file`` (created if missing) for the block.

    Waits at most ``wait_seconds`` (0: not at all) for another holder to finish, then
    raises ``BusyError`` naming it. ``what`` names the thing being changed in messages.
    """
    subject = what or str(lock_file)
    started = time.monotonic()
    deadline = started + max(0.0, wait_seconds)
    while True:
        try:
            fd = os.open(lock_file, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as error:
            raise TrackedError(
                f"{subject}: cannot create the lock file {lock_file} ({error.strerror}); "
                "nothing written"
            ) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as error:
            os.close(fd)
            if error.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise TrackedError(
                    f"{subject}: cannot lock {lock_file} ({error.strerror}); nothing written"
                ) from None
            now = time.monotonic()
            # A holder records itself right after locking and removes the file as it ends:
            # while no holder is on record, look again for a moment rather than refuse
            # without a name (or refuse a lock that is being released).
            unnamed = _recorded_holder(lock_file) is None
            if now < deadline or (unnamed and now < started + _UNNAMED_GRACE_SECONDS):
                time.sleep(_POLL_SECONDS)
                continue
            raise BusyError(
                f"{subject} is being changed by another command: {describe_holder(lock_file)}; "
                f"nothing written. Run this command again when it has finished (the lock is "
                f"{lock_file}; it goes away with the process that holds it)"
            ) from None
        if _same_file(fd, lock_file):
            break
        # The previous holder removed the file after we opened it: lock the current one.
        os.close(fd)
    try:
        os.ftruncate(fd, 0)
        os.write(fd, (json.dumps(holder()) + "\n").encode("utf-8"))
        yield
    finally:
        # Removed while still locked: a writer that opened it meanwhile sees it is gone.
        with contextlib.suppress(OSError):
            os.unlink(lock_file)
        os.close(fd)


def _same_file(fd: int, path: Path) -> bool:
    try:
        on_disk = os.stat(path)
    except FileNotFoundError:
        return False
    held = os.fstat(fd)
    return (held.st_dev, held.st_ino) == (on_disk.st_dev, on_disk.st_ino)


@dataclass(frozen=True)
class Edit:
    """A file read under its lock; ``replace`` writes it back if nobody else has."""

    path: Path
    real: Path
    original: bytes

    def text(self) -> str:
        try:
            return self.original.decode("utf-8")
        except UnicodeDecodeError as error:
            raise TrackedError(
                f"{self.path}: not UTF-8 text (byte {error.start}); nothing written"
            ) from None

    def replace(self, text: str) -> None:
        """Write ``text`` if the file still holds the bytes read; else ``ChangedError``."""
        if Path(os.path.realpath(self.path)) != self.real:
            raise ChangedError(
                f"{self.path} now points to another file than when it was read; nothing written"
            )
        try:
            current = self.real.read_bytes()
        except OSError as error:
            raise ChangedError(
                f"{self.path}: cannot read it again before writing ({error.strerror}); "
                "nothing written"
            ) from None
        if current != self.original:
            raise ChangedError(
                f"{self.path} was changed by another command since it was read; nothing "
                "written. Run this command again: it reads the file anew"
            )
        write_atomic(self.real, text.encode("utf-8"))


@contextlib.contextmanager
def edit(path: Path, *, wait_seconds: float = 0.0) -> Iterator[Edit]:
    """Lock the file ``path`` resolves to, read its bytes, and hand them over for one edit."""
    real = Path(os.path.realpath(path))
    if not real.is_file():
        raise TrackedError(f"{path}: cannot read it (no such file); nothing written")
    with exclusive(lock_file_for(path), what=str(path), wait_seconds=wait_seconds):
        try:
            original = real.read_bytes()
        except OSError as error:
            raise TrackedError(
                f"{path}: cannot read it ({error.strerror}); nothing written"
            ) from None
        yield Edit(path, real, original)


def write_atomic(path: Path, data: bytes) -> None:
    """Replace the file ``path`` in one rename, keeping its mode: a crash leaves the old
    file or the new, never half. ``path`` must not be a symlink (pass its target)."""
    mode = path.stat().st_mode & 0o7777 if path.exists() else 0o644
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(data)
            stream.flush()
            os.fsync(stream.fileno())
        os.chmod(temporary, mode)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    fsync_path(path.parent)


def fsync_path(path: Path) -> None:
    """Flush ``path`` to disk: a file's contents, or a directory's entries."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def replace_json_value(text: str, keys: Sequence[str], value: Any) -> str:
    """``text`` (a JSON document) with the value at ``keys`` replaced by ``value``.

    Only that value's characters change: it is rendered with the indentation of the line
    it starts on and the indentation step found inside it (on one line if it was on one
    line), non-ASCII kept as is, the file's line ending used. Raises ``KeyError`` naming
    the path when a key is missing or a parent is not an object.
    """
    expected = json.loads(text)
    start, end = _value_span(text, keys)
    original = text[start:end]
    line_start = text.rfind("\n", 0, start) + 1
    line = text[line_start:start]
    base = line[: len(line) - len(line.lstrip(" \t"))]
    newline = "\r\n" if "\r\n" in text else "\n"
    if "\n" not in original:
        rendered = json.dumps(value, ensure_ascii=False)
    else:
        inner = original.split("\n", 1)[1]
        step = inner[: len(inner) - len(inner.lstrip(" \t"))]
        step = step[len(base) :] if step.startswith(base) and len(step) > len(base) else "  "
        rendered = json.dumps(value, indent=step, ensure_ascii=False).replace("\n", newline + base)
    updated = text[:start] + rendered + text[end:]
    owner = expected
    for key in keys[:-1]:
        owner = owner[key]
    owner[keys[-1]] = value
    if json.loads(updated) != expected:  # pragma: no cover - a scanner fault, never data
        raise AssertionError(f"re-rendering {'.'.join(keys)} changed more than that value")
    return updated


def _skip_space(text: str, index: int) -> int:
    while index < len(text) and text[index] in _JSON_SPACE:
        index += 1
    return index


def _value_span(text: str, keys: Sequence[str]) -> tuple[int, int]:
    """Where the value at ``keys`` starts and ends in ``text``, a valid JSON document (the
    last of duplicate keys, as json.loads reads it)."""
    decoder = json.JSONDecoder()
    start = _skip_space(text, 0)
    for depth, key in enumerate(keys):
        where = ".".join(keys[:depth]) or "the document"
        if text[start] != "{":
            raise KeyError(f"{where} is not an object, so it has no {key!r}")
        found = None
        index = _skip_space(text, start + 1)
        while text[index] != "}":
            name, index = decoder.raw_decode(text, index)  # a key is a JSON string
            index = _skip_space(text, _skip_space(text, index) + 1)  # past the ':'
            end = decoder.raw_decode(text, index)[1]
            if name == key:
                found = (index, end)
            index = _skip_space(text, end)
            if text[index] == ",":
                index = _skip_space(text, index + 1)
        if found is None:
            raise KeyError(f"{where} has no {key!r}")
        start, end = found
    return start, decoder.raw_decode(text, start)[1]
