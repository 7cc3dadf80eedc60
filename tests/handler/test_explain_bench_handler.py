"""The explanations benchmark through the real handler (benchmarks/explain_handler.py):
warm figures with and without ``"explain"``, and cold starts of fresh processes."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pytest

from benchmarks import explain, explain_handler
from inference import compiled_model
from inference.compiled_pipeline import CompiledPipeline
from training import golden
from training.compile import compile_pipeline

ROOT = Path(__file__).resolve().parents[2]
VERSION_DIR = ROOT / "model_artifacts" / "churn" / "v1"


@pytest.fixture(scope="module")
def archives(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The churn v1 pipeline compiled with cover and without, and a record, as the
    benchmark's measuring process leaves them."""
    out = tmp_path_factory.mktemp("bench")
    payload = joblib.load(VERSION_DIR / "model.joblib")
    data = compile_pipeline(
        payload["pipeline"], model_name="churn", model_version="v1", features=payload["features"]
    )
    (out / explain_handler.WITH_COVER).write_bytes(data)
    (out / explain_handler.WITHOUT_COVER).write_bytes(explain._without_cover(data))
    (out / "record.json").write_text(json.dumps(golden.read(VERSION_DIR).instances()[0]))
    return out


@pytest.fixture
def isolated_env(monkeypatch: pytest.MonkeyPatch, fresh_environment: Any) -> None:
    for name in ("MODEL_NAME", "MODEL_VERSION", "MODEL_RUNTIME", "MODEL_PATH", "MODEL_SHA256"):
        monkeypatch.setenv(name, os.environ.get(name, ""))
    for name in ("MODEL_BUCKET", "MODEL_KEY"):
        monkeypatch.delenv(name, raising=False)


def test_warm_figures_come_from_the_handler_and_build_no_explainer_unasked(
    archives: Path, isolated_env: None
) -> None:
    path = archives / explain_handler.WITH_COVER
    data = path.read_bytes()
    record = json.loads((archives / "record.json").read_text())
    model = compiled_model.load(data)
    assert isinstance(model, CompiledPipeline)
    names = [f["name"] for f in model.features]
    X = np.array([[record[n] for n in names]], dtype=np.float64)
    engine = dict(zip(names, model.explainer().explain(X).contributions[0, :, 0], strict=True))
    calls: list[int] = []

    def timed(call: Any) -> tuple[float, float]:
        calls.append(1)
        call()
        return 1.0, 0.5

    out = explain_handler.warm(path, data, record, engine, 1, timed)
    assert out["plain_status"] == 200 and out["explainer_lazy"] is True
    assert out["one_row"] == {"wall_ms": 1.0, "cpu_ms": 0.5}
    # 50 plain and 50 explained requests, the handler's contributions the engine's.
    assert len(calls) == 100 and out["explain_one_row"]["wall_ms"] == 1.0
    assert out["parity_max_abs_diff"] <= 1e-9


def test_cold_starts_alternate_fresh_processes_over_both_archives(archives: Path) -> None:
    out = explain_handler.cold(archives, runs=2, cpu=None)
    samples = out["samples"]
    assert (
        len(samples[explain_handler.WITH_COVER]) == len(samples[explain_handler.WITHOUT_COVER]) == 2
    )
    assert all(50 < ms < 60_000 for values in samples.values() for ms in values)
    assert out["ratio"] == pytest.approx(out["with_cover_ms"] / out["without_cover_ms"], abs=1e-3)
