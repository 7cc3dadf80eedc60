"""`rollout compare --export FILE` applies the canary evaluator's rule to a capture export,
and gives the deployed evaluator's verdict on the same records."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from botocore.stub import Stubber

from monitors import canary as evaluator
from serving import capture
from serving.canary import Thresholds
from tests.infra.test_canary_evaluator import (
    NOW,
    STARTED,
    alias,
    first_record,
    published,
    side,
)
from tests.infra.test_drift_monitor import stubbed_clients
from tools.rollout import verdict as rule
from tools.rollout.__main__ import main

AT = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC)
SIDES = {"v1": "7", "v2": "8"}  # model version -> the Lambda version that served it


def side_records(
    rng: np.random.Generator, model_version: str, count: int, rate: float, spread: float
) -> list[dict[str, Any]]:
    """``count`` requests of 1 to 6 rows, as the handler captures them (serving.capture)."""
    found: list[dict[str, Any]] = []
    for index in range(count):
        rows = int(rng.integers(1, 7))
        level = np.clip(rate + rng.normal(0, 0.1), 0.01, 0.99)
        positive = rng.uniform(size=rows) < level
        probability = np.where(positive, 0.5 + spread * rng.uniform(size=rows),
                               0.5 - spread * rng.uniform(size=rows))  # fmt: skip
        found += capture.records(
            request_id=f"{model_version}-{index}", timestamp=AT, model_name="churn",
            model_version=model_version, lambda_version=SIDES[model_version],
            feature_names=["x"], rows=[[1.0]] * rows, probabilities=probability.tolist(),
            predictions=positive.astype(int).tolist(),
        )  # fmt: skip
    return found


CASES = {
    "healthy": (0.22, 0.4),
    "harmful": (0.40, 0.4),
    "better calibrated": (0.22, 0.08),
}


@pytest.fixture
def stubbed() -> Iterator[tuple[dict[str, Any], dict[str, Stubber]]]:
    yield from stubbed_clients("lambda", "logs", "cloudwatch")


def deployed_run(stubbed: Any, records: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    """The evaluator's run over these records (its Logs Insights answers)."""
    clients, stubbers = stubbed
    alias(stubbers, {"8": 0.1})
    first_record(stubbers, STARTED, records["8"][0])
    task = evaluator.prediction_of(records["8"][0])[0]
    for version in ("7", "8"):
        side(stubbers, version, records[version], task)
    seen: dict[str, float] = {}
    published(stubbers, seen)
    summary: dict[str, Any] = evaluator.run(
        evaluator.Settings(function_name="fn", alias_name="production", log_group="/aws/fn",
                           model_version="v2", namespace="SklearnLambdaServing/prod"),
        lambda_client=clients["lambda"], logs=clients["logs"], cloudwatch=clients["cloudwatch"],
        now=NOW, expired=lambda: False, sleep=lambda _: None,
    )  # fmt: skip
    return {**summary["report"], "metrics": seen}


@pytest.mark.parametrize("case", CASES)
def test_the_cli_and_the_deployed_evaluator_agree_on_one_export(
    case: str, stubbed: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rate, spread = CASES[case]
    rng = np.random.default_rng(list(CASES).index(case))
    stable = side_records(rng, "v1", 1000, 0.22, 0.4)
    candidate = side_records(rng, "v2", 250, rate, spread)
    export = tmp_path / "capture.jsonl"
    lines = [json.dumps(r) for r in stable + candidate] + ['{"message": "not a record"}']
    export.write_text("\n".join(lines) + "\n")

    code = main(["compare", "--env", "prod", "--export", str(export)])
    out = capsys.readouterr().out
    deployed = deployed_run(stubbed, {"7": stable, "8": candidate})

    verdict = next(line.split(": ", 1)[1] for line in out.splitlines() if "verdict:" in line)
    assert verdict == deployed["verdict"]
    assert code == rule.EXIT[verdict]
    offline, _, _ = rule.judge(export, None, None, Thresholds())
    assert [t.p_value for t in offline.harm] == [t["p_value"] for t in deployed["harm"]]
    assert offline.psi == deployed["psi"] == deployed["metrics"]["PredictionShiftPSI"]
    assert deployed["metrics"]["CanaryHarm"] == (verdict == "roll back")
    expected = {"healthy": "promote", "harmful": "roll back", "better calibrated": "hold"}
    assert verdict == expected[case]


def test_the_sides_can_be_named_and_unknown_ones_are_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rng = np.random.default_rng(9)
    export = tmp_path / "capture.jsonl"
    records = side_records(rng, "v1", 60, 0.22, 0.4) + side_records(rng, "v2", 60, 0.22, 0.4)
    export.write_text("\n".join(json.dumps(r) for r in records) + "\n")
    code = main(["compare", "--env", "prod", "--export", str(export), "--stable-version", "v2",
                 "--candidate-version", "v1"])  # fmt: skip
    assert code == 0 and "stable v2, candidate v1" in capsys.readouterr().out
    code = main(["compare", "--env", "prod", "--export", str(export), "--stable-version", "v9"])
    assert code == 2
    assert "--stable-version 'v9' is not in the export (it has ['v1', 'v2'])" in (
        capsys.readouterr().err
    )


def test_an_export_of_one_version_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    export = tmp_path / "capture.jsonl"
    records = side_records(np.random.default_rng(3), "v1", 5, 0.22, 0.4)
    export.write_text("\n".join(json.dumps(r) for r in records) + "\n")
    assert main(["compare", "--env", "prod", "--export", str(export)]) == 2
    assert "the export has model versions ['v1']: name the two sides" in capsys.readouterr().err


def test_an_unreadable_export_is_refused_naming_the_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    export = tmp_path / "capture.jsonl"
    export.write_text('{"capture": 1, "format": "capture/1"}\nnot json\n')
    assert main(["compare", "--env", "prod", "--export", str(export)]) == 2
    assert f"{export}: line 1: " in capsys.readouterr().err
