"""Synthetic capture exports, manifests and outcome files for the drift and outcomes tools.

Everything is drawn with ``training.synthetic.generate`` and answered by the committed
churn v1 model, and the capture lines are written by ``serving.capture`` itself, so the
tools read what the handler will write. ``python -m tests.analysis.synthetic DIR`` writes
the files the worked examples in docs/capture-and-drift.md were made from.
"""

from __future__ import annotations

import csv
import io
import json
import sys
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any

import joblib
import numpy as np
from sklearn.model_selection import train_test_split

from serving import distributions
from training.schema import FEATURE_NAMES
from training.synthetic import generate
from training.train import HOLDOUT_FRACTION, SPLIT_SEED

ROOT = Path(__file__).resolve().parents[2]
LAMBDA_SRC = ROOT / "lambda_src"
# Also run as `python -m tests.analysis.examples --write`, outside pytest's pythonpath.
if str(LAMBDA_SRC) not in sys.path:
    sys.path.insert(0, str(LAMBDA_SRC))

from serving import capture  # noqa: E402

V1 = ROOT / "model_artifacts" / "churn" / "v1"
V1_DATA = {"rows": 20000, "seed": 7}  # training.reference's recipe for v1
START = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)
TENURE = FEATURE_NAMES.index("tenure_months")
MONTHLY = FEATURE_NAMES.index("monthly_charges")


@cache
def model() -> Any:
    return joblib.load(V1 / "model.joblib")["pipeline"]


def predict(X: np.ndarray) -> np.ndarray:
    return np.asarray(model().predict_proba(X)[:, 1], dtype=np.float64)


@cache
def v1_manifest() -> dict[str, Any]:
    """v1's manifest with the reference distributions training will record."""
    manifest: dict[str, Any] = json.loads((V1 / "manifest.json").read_text())
    X, y = generate(V1_DATA["rows"], V1_DATA["seed"])
    _, X_test, _, _ = train_test_split(
        X, y, test_size=HOLDOUT_FRACTION, random_state=SPLIT_SEED, stratify=y
    )
    manifest[distributions.MANIFEST_KEY] = distributions.reference_distributions(
        X, manifest["features"], predict(X_test)
    )
    return manifest


def shifted(X: np.ndarray, tenure_months: float = 6, monthly_factor: float = 1.2) -> np.ndarray:
    """Customers who stay half a year longer and pay 20 % more (within the allowed ranges)."""
    out = X.copy()
    out[:, TENURE] = np.minimum(out[:, TENURE] + tenure_months, 240)
    out[:, MONTHLY] = np.minimum(np.round(out[:, MONTHLY] * monthly_factor, 2), 1000)
    return out


def capture_lines(
    X: np.ndarray,
    probabilities: np.ndarray,
    *,
    model_version: str = "v1",
    lambda_version: str = "6",
    prefix: str = "req",
    batch: int = 1,
) -> list[str]:
    """Capture lines for ``X`` sent as requests of ``batch`` rows, one a second."""
    lines = []
    for start in range(0, len(X), batch):
        rows = X[start : start + batch]
        p = probabilities[start : start + batch]
        for record in capture.records(
            request_id=f"{prefix}-{start // batch:06d}",
            timestamp=START + timedelta(seconds=start // batch),
            model_name="churn",
            model_version=model_version,
            lambda_version=lambda_version,
            feature_names=FEATURE_NAMES,
            rows=rows.tolist(),
            probabilities=p.tolist(),
            predictions=[int(v >= 0.5) for v in p],
        ):
            lines.append(capture.encode(record))
    return lines


def write_drift_example(directory: Path, *, rows: int = 3000) -> dict[str, Path]:
    """Two exports of v1 traffic: one drawn as in training, one with shifted customers."""
    directory.mkdir(parents=True, exist_ok=True)
    manifest = directory / "manifest.json"
    manifest.write_text(json.dumps(v1_manifest(), indent=2) + "\n")
    same, _ = generate(rows, seed=101)
    drifted = shifted(generate(rows, seed=102)[0])
    paths = {"manifest": manifest}
    for name, X in (("same", same), ("drifted", drifted)):
        path = directory / f"capture-{name}.jsonl"
        path.write_text("\n".join(capture_lines(X, predict(X), prefix=name)) + "\n")
        paths[name] = path
    return paths


def write_outcomes_example(
    directory: Path, *, rows: int = 4000, noise: float = 1.0
) -> dict[str, Path]:
    """A canary where v2 is the real model and v1 a noisier one; labels as a CSV.

    v1 answers with v2's logit plus normal noise of standard deviation ``noise`` (with
    ``noise=0`` both versions are the same model).
    Requests go to v1 or v2 at random (as weighted routing does), some as 4-row batches.
    Labels are the synthetic customers' actual churn, written as spreadsheets export them:
    UTF-8 with a byte-order mark, CRLF line ends, quoted request ids.
    """
    directory.mkdir(parents=True, exist_ok=True)
    X, y = generate(rows, seed=202)
    good = predict(X)
    rng = np.random.default_rng(203)
    logit = np.log(good / (1 - good)) + rng.normal(0, noise, rows)
    noisy = 1 / (1 + np.exp(-logit))
    lines: list[str] = []
    labels: list[tuple[str, int, int]] = []
    side = rng.random(rows // 4) < 0.5
    for block in range(rows // 4):
        version, p = ("v2", good) if side[block] else ("v1", noisy)
        start = block * 4
        batch = 4 if block % 5 == 0 else 1
        for offset in range(0, 4, batch):
            i = start + offset
            request = f"req-{version}-{i:06d}"
            lines += capture_lines(
                X[i : i + batch],
                p[i : i + batch],
                model_version=version,
                lambda_version="7" if version == "v2" else "6",
                prefix=request,
                batch=batch,
            )
            labels += [(f"{request}-000000", r, int(y[i + r])) for r in range(batch)]
    capture_path = directory / "capture.jsonl"
    capture_path.write_text("\n".join(lines) + "\n")
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n", quoting=csv.QUOTE_NONNUMERIC)
    writer.writerow(["request_id", "row", "label"])
    writer.writerows(labels)
    labels_path = directory / "outcomes.csv"
    labels_path.write_bytes(b"\xef\xbb\xbf" + buffer.getvalue().encode("utf-8"))
    return {"capture": capture_path, "labels": labels_path}


if __name__ == "__main__":
    target = Path(sys.argv[1])
    for written in (write_drift_example(target), write_outcomes_example(target)):
        for path in written.values():
            print(path)
