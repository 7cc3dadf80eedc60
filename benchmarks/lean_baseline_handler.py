"""The lean way most Lambda tutorials serve scikit-learn, kept as the honest benchmark baseline.

Module-level imports of json, boto3, joblib and numpy; the model downloaded from S3 and
``joblib.load``-ed at import (so init, not the first request, pays for it); one
``predict_proba`` per call; no pandas, no metrics calls, no logging. Not used by the
product; only by ``make bench``.
"""

from __future__ import annotations

import io
import json
import os
from typing import Any

import boto3
import joblib
import numpy as np

from benchmarks.churn_features import FEATURES

s3 = boto3.client("s3")
_body = s3.get_object(Bucket=os.environ["MODEL_BUCKET"], Key=os.environ["MODEL_KEY"])["Body"]
model = joblib.load(io.BytesIO(_body.read()))["pipeline"]


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    body = json.loads(event["body"]) if "body" in event else event
    rows = body.get("instances", [body])
    X = np.array([[row[name] for name in FEATURES] for row in rows], dtype=np.float64)
    proba = model.predict_proba(X)[:, 1]
    predictions = [{"prediction": int(p >= 0.5), "probability": float(p)} for p in proba]
    return {"statusCode": 200, "body": json.dumps({"predictions": predictions})}
