"""What pandas adds to the sklearn runtime: ``import pandas`` time and the first request of
a pipeline fitted on a DataFrame against the same pipeline fitted on the codes matrix.

    python -m benchmarks.frame_first_request [--runs 7]

Both models are the pipeline of issue 21 (impute and scale the numbers, one-hot encode the
categories with ``handle_unknown="ignore"``, HistGradientBoostingClassifier), fitted on the
same 400 rows: one on a DataFrame with string columns and NaN (served through
``inference.frames.to_frame``, payload ``"input": "frame"``), one on the codes matrix with
integer column selectors; the latter also in a process where pandas cannot be imported
(the sklearn image before pandas was added). scikit-learn 1.9 imports pandas whenever it
is installed (``sklearn.utils.fixes``), so with pandas in the image every model of the
sklearn runtime pays its import on load, not only frame models. Each run is a fresh
process (interleaved, rotating the order): load = import of the runtime and
``sklearn_model.load`` of the joblib bytes; first predict = the first ``outputs`` on one
row (for the frame model: building the DataFrame too). Prints medians of CPU time in
milliseconds (the process's, which waits for a core on a loaded machine do not inflate).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
FEATURES: list[dict[str, Any]] = [
    {"name": "bill", "dtype": "number", "allowed": {"min": 0, "max": 100}},
    {"name": "flipper", "dtype": "number", "allowed": {"min": 0, "max": 300}, "nullable": True},
    {"name": "island", "dtype": "categorical", "allowed": {"values": ["Biscoe", "Dream"]}},
    {"name": "sex", "dtype": "categorical", "allowed": {"values": ["female", "male"]}},
]
CHILD = """
import json, sys, time
if {block}:
    class NoPandas:  # the image before pandas: "import pandas" fails, as when not installed
        def find_spec(self, name, path=None, target=None):
            if name == "pandas" or name.startswith("pandas."):
                raise ImportError(name)
    sys.meta_path.insert(0, NoPandas())
# CPU time of this process: on a shared machine the wall clock also counts waits for a core.
began = time.process_time()
sys.path.insert(0, {lambda_src!r})
import numpy as np
from inference import sklearn_model
model = sklearn_model.load(open({path!r}, "rb").read())
loaded = time.process_time()
model.outputs(np.array([[40.0, float("nan"), 1.0, 0.0]]))
done = time.process_time()
print(json.dumps({{"load": (loaded - began) * 1e3, "first": (done - loaded) * 1e3,
                  "pandas": "pandas" in sys.modules}}))
"""


def write_models(directory: Path) -> dict[str, Path]:
    import joblib
    import numpy as np
    import pandas as pd
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline, make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    rng = np.random.default_rng(3)
    rows = 400
    frame = pd.DataFrame(
        {
            "bill": rng.uniform(32, 60, rows).round(1),
            "flipper": rng.uniform(170, 232, rows).round(0),
            "island": rng.choice(["Biscoe", "Dream"], rows),
            "sex": rng.choice(["female", "male"], rows),
        }
    )
    frame.loc[::7, "flipper"] = np.nan
    y = ((frame["bill"] > 45) ^ (frame["island"] == "Dream")).to_numpy().astype(int)
    codes = np.column_stack(
        [
            frame["bill"],
            frame["flipper"],
            frame["island"].map({"Biscoe": 0.0, "Dream": 1.0}),
            frame["sex"].map({"female": 0.0, "male": 1.0}),
        ]
    ).astype(np.float64)

    def pipeline(numbers: list[Any], categories: list[Any]) -> Pipeline:
        pre = ColumnTransformer(
            [
                ("num", make_pipeline(SimpleImputer(), StandardScaler()), numbers),
                ("cat", OneHotEncoder(handle_unknown="ignore"), categories),
            ]
        )
        return Pipeline([("pre", pre), ("model", HistGradientBoostingClassifier(max_iter=100))])

    base = {
        "format": "sklearn-pipeline-joblib/1",
        "model_name": "penguins",
        "model_version": "v1",
        "task": "binary",
        "classes": [0, 1],
        "features": FEATURES,
    }
    fitted_frame = pipeline(["bill", "flipper"], ["island", "sex"]).fit(frame, y)
    fitted_codes = pipeline([0, 1], [2, 3]).fit(codes, y)
    paths = {"frame": directory / "frame.joblib", "matrix": directory / "matrix.joblib"}
    dtypes = {name: str(dtype) for name, dtype in frame.dtypes.items()}
    joblib.dump(
        {**base, "pipeline": fitted_frame, "input": "frame", "frame_dtypes": dtypes},
        paths["frame"],
    )
    joblib.dump({**base, "pipeline": fitted_codes}, paths["matrix"])
    return paths


def import_ms(code: str, runs: int) -> float:
    """Median cumulative ``-X importtime`` of the pandas package after ``code`` ran."""
    samples = []
    for _ in range(runs):
        err = subprocess.run(
            [sys.executable, "-X", "importtime", "-c", f"{code}\nimport pandas"],
            capture_output=True,
            text=True,
            check=True,
        ).stderr
        match = re.search(r"\|\s*(\d+)\s*\|\s*pandas\s*$", err, re.MULTILINE)
        if match is None:
            raise SystemExit("no import line for pandas: was it already imported?")
        samples.append(int(match.group(1)) / 1e3)
    return statistics.median(samples)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.frame_first_request")
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        paths = write_models(Path(tmp))
        kinds = {"frame": "frame", "matrix": "matrix", "matrix, no pandas": "matrix"}
        figures: dict[str, dict[str, list[float]]] = {k: {"load": [], "first": []} for k in kinds}
        for run in range(args.runs):
            order = list(kinds)
            order = order[run % 3 :] + order[: run % 3]
            for kind in order:
                block = kind.endswith("no pandas")
                code = CHILD.format(
                    lambda_src=str(ROOT / "lambda_src"), path=str(paths[kinds[kind]]), block=block
                )
                out = subprocess.run(
                    [sys.executable, "-c", code], capture_output=True, text=True, check=True
                ).stdout
                result = json.loads(out.strip().splitlines()[-1])
                if result["pandas"] == block:
                    raise SystemExit(f"{kind} model: pandas imported is {result['pandas']}")
                figures[kind]["load"].append(result["load"])
                figures[kind]["first"].append(result["first"])
    print(f"median of {args.runs} fresh processes, CPU ms (load average {os.getloadavg()[0]:.1f})")
    print("| model | load | first predict | load + first predict |")
    print("|---|---|---|---|")
    for kind, samples in figures.items():
        load, first = statistics.median(samples["load"]), statistics.median(samples["first"])
        pairs = zip(samples["load"], samples["first"], strict=True)
        total = statistics.median(a + b for a, b in pairs)
        print(f"| {kind} | {load:.1f} | {first:.1f} | {total:.1f} |")
    alone = import_ms("pass", args.runs)
    after = import_ms("import sklearn", args.runs)
    print(
        f"import pandas (-X importtime, cumulative): {alone:.1f} ms alone; {after:.1f} ms inside "
        "scikit-learn's import (numpy and scipy already loaded)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
