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

from serving import artifacts
from serving.schema import SchemaError
from tests.training.conftest import WriteCsv
from training import package
from training import train as train_module
from training.dataset import DatasetError, load_csv
from training.schema import CHURN_SCHEMA_FILE, load_schema
from training.synthetic import generate

GOOD_FEATURE = {"name": "a", "type": "number", "min": 0, "max": 1}
FEATURE_YAML = "{name: a, type: number, min: 0, max: 1}"


def _schema(tmp_path: Path, document: Any, name: str = "schema.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(document))
    return path


def _package(tmp_path: Path, *extra: str, model: str = "churn", version: str = "v7") -> int:
    argv = ["--model", model, "--version", version, "--output", str(tmp_path / "out")]
    argv += ["--confirm-feature-order"]  # models fitted on numpy arrays, in schema order
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


# ------------------------------------------------------------ YAML aliases and quoting


def _alias_bomb() -> str:
    """About 500 bytes that expand to 10**9 strings: ten aliases of the level below, nine
    levels deep."""
    lines = ['a0: &a0 ["xxxxxxxxxx"]']
    for level in range(1, 10):
        lines.append(f"a{level}: &a{level} [{', '.join([f'*a{level - 1}'] * 10)}]")
    return "\n".join([*lines, "task: binary", "label: *a9", "features: *a9", ""])


def test_a_yaml_alias_bomb_is_refused_before_anything_is_expanded(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import yaml

    constructed: list[bool] = []

    def spy(self: Any, node: Any) -> None:
        # Builds nothing (building the value is what exhausts memory); a failure report
        # must not hold ``node`` either: its repr expands the aliases too.
        constructed.append(True)

    # Composition stops at the first anchor: the constructor never builds a value.
    monkeypatch.setattr(yaml.constructor.BaseConstructor, "construct_document", spy)
    path = tmp_path / "bomb.yaml"
    path.write_text(_alias_bomb())
    assert len(path.read_bytes()) < 600
    with pytest.raises(SchemaError, match=rf"^{path}: line 1: YAML anchors and aliases are not "):
        load_schema(path)
    assert _package(tmp_path, "--schema", str(path)) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {path}: line 1: YAML anchors and aliases are not allowed")
    assert len(err) < 400
    assert constructed == []


def test_an_alias_without_its_anchor_on_the_first_line_is_refused_by_line(tmp_path: Path) -> None:
    path = tmp_path / "schema.yml"
    path.write_text(
        "task: binary\nlabel: y\nfeatures:\n  - {name: a, type: number, min: 0, max: 1}\n"
        "  - name: b\n    type: number\n    min: &low 0\n    max: 1\n"
    )
    with pytest.raises(SchemaError, match=rf"^{path}: line 7: YAML anchors and aliases"):
        load_schema(path)


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ({"task": "x" * 10_000, "label": "y", "features": [GOOD_FEATURE]}, r"task 'xxxx"),
        ({"task": "binary", "label": "y" * 10_000, "features": [GOOD_FEATURE]}, r"label 'yyyy"),
        ({"task": "binary", "label": "y", "features": [[[list(range(10_000))]]]}, r"features\[0\]"),
        ({"task": "binary", "label": "y", "features": "f" * 10_000}, r"'features' must be"),
        (
            {"task": "binary", "label": "y", "features": [{**GOOD_FEATURE, "max": "9" * 10_000}]},
            r"features\[0\] \(a\)\.max must be a finite number, got '9999",
        ),
        (
            {"task": "binary", "label": "y", "features": [{**GOOD_FEATURE, "k" * 10_000: 1}]},
            r"features\[0\] has unknown key\(s\) 'kkkk",
        ),
    ],
    ids=["task", "label", "feature", "features", "bound", "unknown-key"],
)
def test_a_long_value_is_quoted_truncated(tmp_path: Path, document: Any, message: str) -> None:
    path = _schema(tmp_path, document)
    with pytest.raises(SchemaError, match=rf"^{path}: {message}") as refused:
        load_schema(path)
    text = str(refused.value)
    assert len(text) < len(str(path)) + 400, text
    assert "..." in text


def test_keys_of_other_types_are_named_not_sorted_into_a_crash(tmp_path: Path) -> None:
    path = tmp_path / "schema.yaml"
    path.write_text(
        "task: binary\nlabel: y\nfeatures: [{name: a, type: number, min: 0, max: 1}]\n1: x\n"
    )
    with pytest.raises(SchemaError, match=r"the schema has unknown key\(s\) 1; allowed"):
        load_schema(path)


def test_a_document_nested_too_deeply_is_refused(tmp_path: Path) -> None:
    json_path = tmp_path / "deep.json"
    json_path.write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(SchemaError, match=rf"^{json_path}: not valid JSON \(nested too deeply"):
        load_schema(json_path)
    yaml_path = tmp_path / "deep.yaml"
    yaml_path.write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(SchemaError, match=rf"^{yaml_path}: not valid YAML \(nested too deeply"):
        load_schema(yaml_path)


# ------------------------------------------------------------ repeated keys


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        (
            "schema.json",
            '{"task": "binary",\n "label": "y",\n "task": "regression",\n'
            ' "features": [{"name": "a", "type": "number", "min": 0, "max": 1}]}',
            r"line 3: key 'task' is repeated \(the first is on line 1\)",
        ),
        (
            "schema.json",
            '{"task": "binary", "label": "y", "features": [\n'
            '  {"name": "a", "type": "number", "min": 0, "max": 1,\n'
            '   "max": 1000}]}',
            r"line 3: key 'max' is repeated \(the first is on line 2\)",
        ),
        (
            "schema.yaml",
            "task: binary\nlabel: y\nfeatures:\n  - name: a\n    type: number\n    min: 0\n"
            "    max: 1\n    min: -5\n",
            r"line 8: key 'min' is repeated \(the first is on line 6\)",
        ),
        (
            "schema.yml",
            f"task: binary\nlabel: y\nlabel: z\nfeatures: [{FEATURE_YAML}]\n",
            r"line 3: key 'label' is repeated \(the first is on line 2\)",
        ),
    ],
    ids=["json-top", "json-feature", "yaml-feature", "yaml-top"],
)
def test_a_repeated_key_is_refused_naming_key_and_line(
    tmp_path: Path, name: str, text: str, message: str
) -> None:
    # Parsers keep the last of two equal keys: a reviewer reading the first would be wrong.
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(SchemaError, match=rf"^{path}: {message}"):
        load_schema(path)


def test_a_repeated_key_inside_a_string_is_not_a_repeat(tmp_path: Path) -> None:
    path = _schema(
        tmp_path,
        {"task": "binary", "label": "y", "features": [{**GOOD_FEATURE, "description": '"max": 1'}]},
    )
    assert load_schema(path).features[0].description == '"max": 1'


# ------------------------------------------------------------ reserved feature names


@pytest.mark.parametrize("reserved", ["instances", "_warmup"])
def test_a_feature_named_as_a_request_key_is_refused_at_packaging(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], reserved: str
) -> None:
    # The handler reads these names in a request (a batch, the warm-up ping): a model with
    # such a feature was trained and gated, then answered 503 forever.
    features = [GOOD_FEATURE, {**GOOD_FEATURE, "name": reserved}]
    path = _schema(tmp_path, {"task": "binary", "label": "y", "features": features})
    with pytest.raises(SchemaError, match=rf"features\[1\]\.name '{reserved}' is reserved"):
        load_schema(path)
    assert _package(tmp_path, "--schema", str(path)) == 2
    assert f"features[1].name '{reserved}' is reserved" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_the_handler_refuses_every_reserved_name_in_an_artifact_schema() -> None:
    from inference import events, validation
    from serving.reserved import RESERVED_FEATURE_NAMES

    assert {validation.BATCH_KEY, events.WARMUP_KEY} <= set(RESERVED_FEATURE_NAMES)
    for name in RESERVED_FEATURE_NAMES:
        entry = {"name": name, "dtype": "number", "allowed": {"min": 0, "max": 1}}
        with pytest.raises(ValueError, match=rf"uses the reserved name '{name}'"):
            validation.schema_from_artifact([entry])


# ------------------------------------------------------------ manifest paths confined

REPO = Path(__file__).resolve().parents[2]
OUTSIDE = ["../../etc/hostname", "/etc/hostname", "sub/../../x", "", "golden.json\x00"]


def _version_naming(tmp_path: Path, file: str) -> Path:
    import shutil

    directory = tmp_path / "churn" / "v1"
    shutil.copytree(REPO / "model_artifacts/churn/v1", directory)
    manifest = json.loads((directory / "manifest.json").read_text())
    manifest["artifacts"]["sklearn"]["file"] = file
    (directory / "manifest.json").write_text(json.dumps(manifest))
    return directory


@pytest.mark.parametrize("file", OUTSIDE)
def test_a_manifest_file_outside_its_version_is_refused_by_training_readers(
    tmp_path: Path, file: str
) -> None:
    directory = _version_naming(tmp_path, file)
    message = r"artifacts\.sklearn\.file=.* is not allowed: a file inside the version directory"
    with pytest.raises(ValueError, match=message):
        artifacts.load_manifest(directory)
    with pytest.raises(ValueError, match=message):
        artifacts.verify_version(directory)


def test_a_manifest_file_through_a_symlink_out_of_the_version_is_refused(tmp_path: Path) -> None:
    directory = _version_naming(tmp_path, "link.skops")
    (directory / "link.skops").symlink_to("/etc/hostname")
    with pytest.raises(ValueError, match=r"artifacts\.sklearn\.file='link\.skops' is not allowed"):
        artifacts.load_manifest(directory)


@pytest.mark.parametrize("file", OUTSIDE[:3])
def test_synth_refuses_a_manifest_file_outside_its_version(tmp_path: Path, file: str) -> None:
    # Synth read and hashed /etc/hostname, and printed its SHA-256 in the refusal.
    import hashlib

    from stacks.config import load_config
    from stacks.settings import ConfigError
    from tests.infra.conftest import cdk_context

    _version_naming(tmp_path, file)
    with pytest.raises(ConfigError, match=r"artifacts\.sklearn\.file=.* is not allowed") as err:
        load_config(cdk_context(), artifacts_root=tmp_path)
    assert hashlib.sha256(Path("/etc/hostname").read_bytes()).hexdigest() not in str(err.value)


# ------------------------------------------------------------ labels and pickles


@pytest.mark.parametrize("label", ["9223372036854775808", "-9223372036854775809", "1e30"])
def test_a_label_beyond_int64_is_refused_naming_line_and_value(
    tmp_path: Path, write_csv: WriteCsv, capsys: pytest.CaptureFixture[str], label: str
) -> None:
    # np.asarray(..., dtype=np.int64) raised OverflowError: a crash (exit 1), not a refusal.
    def edit(rows: list[list[str]]) -> None:
        rows[4][-1] = label

    data = write_csv(300, edit=edit)
    with pytest.raises(DatasetError, match=rf"^{data}: line 6, column 'churn': '{label}' is "):
        load_csv(data)
    argv = ["--version", "v1", "--data", str(data), "--output", str(tmp_path / "out")]
    assert train_module.main(argv) == 2
    assert f"line 6, column 'churn': '{label}' is beyond" in capsys.readouterr().err
    from sklearn.linear_model import LogisticRegression

    X, y = generate(300, seed=4)
    estimator = tmp_path / "model.joblib"
    joblib.dump(LogisticRegression(max_iter=5000).fit(X, y), estimator)
    assert _package(tmp_path, "--estimator", str(estimator), "--data", str(data)) == 2
    assert f"line 6, column 'churn': '{label}' is beyond" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_loading_a_joblib_without_a_pin_warns_on_stderr(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import hashlib

    from sklearn.linear_model import LogisticRegression

    X, y = generate(300, seed=4)
    path = tmp_path / "model.joblib"
    joblib.dump(LogisticRegression(max_iter=5000).fit(X, y), path)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    package.read_estimator(path, None)
    err = capsys.readouterr().err
    assert err.startswith(f"warning: {path}: a joblib file is a pickle: loading it runs ")
    assert f"--sha256 {digest}" in err
    package.read_estimator(path, digest)
    assert capsys.readouterr().err == ""
    skops_path = tmp_path / "model.skops"
    import skops.io

    skops_path.write_bytes(skops.io.dumps(LogisticRegression(max_iter=5000).fit(X, y)))
    package.read_estimator(skops_path, None)
    assert capsys.readouterr().err == ""


def test_long_cells_and_names_are_quoted_truncated(
    tmp_path: Path, write_csv: WriteCsv, capsys: pytest.CaptureFixture[str]
) -> None:
    def edit(rows: list[list[str]]) -> None:
        rows[0][0] = "9" * 5000 + "x"

    data = write_csv(300, edit=edit)
    with pytest.raises(DatasetError, match=r"line 2, column 'tenure_months': '9999") as refused:
        load_csv(data)
    assert len(str(refused.value)) < len(str(data)) + 200
    with pytest.raises(ValueError, match=r"model name 'aaaa.*\.\.\..*' is not allowed") as named:
        artifacts.check_identity("a" * 5000 + "!", "v1")
    assert len(str(named.value)) < 300


def test_a_key_repeated_under_an_escape_is_found_on_its_line(tmp_path: Path) -> None:
    path = tmp_path / "schema.json"
    path.write_text(
        '{"task": "binary", "label": "y", "features": [{"name": "a", "type": "number",\n'
        '"min": 0, "max": 1, "description": "{\\"max\\": 2}",\n"m\\u0061x": 5}]}'
    )
    with pytest.raises(
        SchemaError, match=r"line 3: key 'max' is repeated \(the first is on line 2"
    ):
        load_schema(path)


def test_a_schema_file_larger_than_the_bound_is_refused_reading_no_more(tmp_path: Path) -> None:
    from training import schema

    path = tmp_path / "huge.json"
    with path.open("wb") as handle:
        handle.truncate(schema.MAX_SCHEMA_BYTES + 1)  # sparse: nothing is written
    with pytest.raises(SchemaError, match=rf"^{path}: {schema.MAX_SCHEMA_BYTES + 1} bytes"):
        load_schema(path)


def test_an_inline_merge_key_reads_and_a_key_it_repeats_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "schema.yaml"
    path.write_text("task: binary\nlabel: y\nfeatures:\n  - <<: {name: a, type: number}\n"
                    "    min: 0\n    max: 1\n")  # fmt: skip
    assert load_schema(path).features[0].maximum == 1.0
    path.write_text("task: binary\nlabel: y\nfeatures:\n  - <<: {name: a, type: number, min: 5}\n"
                    "    min: 0\n    max: 1\n")  # fmt: skip
    with pytest.raises(
        SchemaError, match=r"line 5: key 'min' is repeated \(the first is on line 4"
    ):
        load_schema(path)
