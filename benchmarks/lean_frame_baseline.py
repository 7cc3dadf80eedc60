"""The lean way to serve a pipeline fitted on a DataFrame: the benchmark baseline of
``benchmarks.frame_pipeline``. Module-level imports of json, joblib and pandas; the pipeline
``joblib.load``-ed at import from FRAME_MODEL_PATH (the file the user saved); each
request's records become a DataFrame (columns by name, null as NaN) and go to
``predict_proba``; nothing else. Not used by the product; only by ``make bench``.
"""

from __future__ import annotations

import json
import os
from typing import Any

import joblib
import pandas as pd

model = joblib.load(os.environ["FRAME_MODEL_PATH"])
COLUMNS = list(model.feature_names_in_)
CLASSES = [str(c) for c in model.classes_]


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    body = json.loads(event["body"]) if "body" in event else event
    rows = body.get("instances", [body])
    frame = pd.DataFrame.from_records(rows, columns=COLUMNS)
    proba = model.predict_proba(frame)
    predictions = [
        {
            "prediction": CLASSES[int(p.argmax())],
            "probabilities": dict(zip(CLASSES, map(float, p), strict=True)),
        }
        for p in proba
    ]
    return {"statusCode": 200, "body": json.dumps({"predictions": predictions})}
