"""Issue 23 (third hardening round): schema files, names and packaging refusals.

Each attack here was once accepted (or crashed with exit 1): a name with a trailing
newline, a YAML alias bomb, repeated keys, a reserved feature name, a manifest path out of
its version directory, a label beyond int64, a joblib loaded without a pin.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import joblib
import pytest

from training import artifacts, package
from training import train as train_module
from training.schema import CHURN_SCHEMA_FILE, SchemaError, load_schema
from training.synthetic import generate

GOOD_FEATURE = {"name": "a", "type": "number", "min": 0, "max": 1}


def _schema(tmp_path: Path, document: Any, name: str = "schema.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(document))
    return path


def _package(tmp_path: Path, *extra: str, model: str = "churn", version: str = "v7") -> int:
    argv = ["--model", model, "--version", version, "--output", str(tmp_path / "out")]
    if "--schema" not in extra:
        argv += ["--schema", str(CHURN_SCHEMA_FILE)]
    if "--estimator" not in extra:
        argv += ["--estimator", str(tmp_path / "absent.joblib")]
    return package.main([*argv, *extra])


# ------------------------------------------------------------ names matched whole


@pytest.mark.parametrize(
    ("model", "version", "message"),
    [
        ("churn\n", "v7", r"model name 'churn\\n' is not allowed"),
        ("churn", "v7\n", r"model version 'v7\\n' is not allowed"),
    ],
)
def test_a_name_or_version_with_a_trailing_newline_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], model: str, version: str, message: str
) -> None:
    # `$` matches before a final newline: `.match` with `^...$` accepted "v7\n".
    assert _package(tmp_path, model=model, version=version) == 2
    assert re.search(message, capsys.readouterr().err)
    argv = ["--model", model, "--version", version, "--output", str(tmp_path / "out")]
    assert train_module.main(argv) == 2
    assert re.search(message, capsys.readouterr().err)
    assert not (tmp_path / "out").exists()
    with pytest.raises(ValueError, match=message):
        artifacts.check_identity(model, version)


def test_a_feature_or_label_name_with_a_trailing_newline_is_refused(tmp_path: Path) -> None:
    feature = _schema(
        tmp_path, {"task": "binary", "label": "y", "features": [{**GOOD_FEATURE, "name": "f\n"}]}
    )
    with pytest.raises(SchemaError, match=r"features\[0\]\.name 'f\\n' is not allowed"):
        load_schema(feature)
    label = _schema(tmp_path, {"task": "binary", "label": "y\n", "features": [GOOD_FEATURE]})
    with pytest.raises(SchemaError, match=r"label 'y\\n' is not allowed"):
        load_schema(label)


def test_a_sha256_with_a_trailing_newline_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        _package(tmp_path, "--sha256", "0" * 64 + "\n")
    assert exit_info.value.code == 2
    assert "is not 64 hex digits" in capsys.readouterr().err
