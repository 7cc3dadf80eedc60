"""training.tracked: the lock, the compare-and-swap, the symlink, the in-place JSON edit."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from training import tracked


def test_the_value_is_re_rendered_in_place_and_nothing_else_moves() -> None:
    text = '{"a" :1,\r\n  "b": {\r\n\t"x": [1,2],\r\n\t"y": "é"\r\n  },\r\n  "c":[3 ,4]}\r\n'
    written = tracked.replace_json_value(text, ["b"], {"x": [1], "y": "ü"})
    # The block takes its line's indentation and the file's line ending; the rest is as was.
    assert written == (
        '{"a" :1,\r\n  "b": {\r\n    "x": [\r\n      1\r\n    ],\r\n    "y": "ü"\r\n  },\r\n'
        '  "c":[3 ,4]}\r\n'
    )
    assert json.loads(written) == {"a": 1, "b": {"x": [1], "y": "ü"}, "c": [3, 4]}
    assert "\n" not in written.replace("\r\n", "")


def test_a_one_line_value_stays_on_one_line() -> None:
    text = '{"env": {"rollout": {"w": 0}, "other" : "é"}}'
    assert tracked.replace_json_value(text, ["env", "rollout"], {"w": 0.5, "m": "ü"}) == (
        '{"env": {"rollout": {"w": 0.5, "m": "ü"}, "other" : "é"}}'
    )


def test_the_last_of_duplicate_keys_is_edited_as_json_loads_reads_it() -> None:
    text = '{"k": 1, "k": 2, "z": 3}'
    assert tracked.replace_json_value(text, ["k"], 9) == '{"k": 1, "k": 9, "z": 3}'


@pytest.mark.parametrize(
    ("keys", "message"),
    [
        (["env", "nope"], "env has no 'nope'"),
        (["env", "list", "x"], "env.list is not an object, so it has no 'x'"),
        (["missing"], "the document has no 'missing'"),
    ],
)
def test_a_missing_key_is_named(keys: list[str], message: str) -> None:
    with pytest.raises(KeyError, match=message):
        tracked.replace_json_value('{"env": {"list": [1], "a": {}}}', keys, 1)


def test_replace_refuses_a_file_changed_since_it_was_read(tmp_path: Path) -> None:
    target = tmp_path / "cdk.json"
    target.write_text("old\n")
    with tracked.edit(target) as editing:
        target.write_text("someone else's\n")
        with pytest.raises(tracked.ChangedError, match=r"cdk\.json was changed by another"):
            editing.replace("mine\n")
    assert target.read_text() == "someone else's\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cdk.json"]


def test_replace_writes_through_a_symlink_keeping_the_mode(tmp_path: Path) -> None:
    target = tmp_path / "real.json"
    target.write_text("old\n")
    target.chmod(0o600)
    link = tmp_path / "cdk.json"
    link.symlink_to("real.json")
    with tracked.edit(link) as editing:
        assert tracked.lock_file_for(link) == tmp_path / ".real.json.lock"
        assert (tmp_path / ".real.json.lock").exists()
        editing.replace("new\n")
    assert link.is_symlink() and os.readlink(link) == "real.json"
    assert target.read_text() == "new\n" and target.stat().st_mode & 0o777 == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cdk.json", "real.json"]


def _take(target: Path) -> None:
    with tracked.edit(target):
        pass


def test_a_held_lock_is_refused_naming_the_holder_and_a_garbled_one_is_bounded(
    tmp_path: Path,
) -> None:
    target = tmp_path / "cdk.json"
    target.write_text("{}\n")
    with tracked.edit(target):
        recorded = json.loads((tmp_path / ".cdk.json.lock").read_text())
        assert recorded["pid"] == os.getpid() and recorded["command"]
        with pytest.raises(tracked.BusyError, match=rf"pid {os.getpid()} on .*nothing written"):
            _take(target)
        (tmp_path / ".cdk.json.lock").write_bytes(b"\xff" * 100_000)
        with pytest.raises(tracked.BusyError) as refused:
            _take(target)
    assert "another writer (it has not recorded itself yet" in str(refused.value)
    assert len(str(refused.value)) < 1000


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(tracked.TrackedError, match=r"nope\.json: cannot read it"):
        _take(tmp_path / "nope.json")
    assert list(tmp_path.iterdir()) == []
