"""The common pattern for serving scikit-learn on Lambda, kept as the benchmark baseline.

Heavy imports at module scope, the model fetched from S3 on the first request, a pandas
DataFrame per request, scikit-learn ``predict_proba``, and two blocking PutMetricData
calls per request. Not used by the product; only by ``make bench``.
"""

from __future__ import annotations

import io
import json
import os
import time
from typing import Any

import boto3
import joblib
import numpy as np
import pandas as pd
import sklearn  # noqa: F401  (the pattern imports it eagerly)

from benchmarks.churn_features import FEATURES

s3 = boto3.client("s3")
cloudwatch = boto3.client("cloudwatch")
model = None


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    global model
    started = time.time()
    if model is None:
        obj = s3.get_object(Bucket=os.environ["MODEL_BUCKET"], Key=os.environ["MODEL_KEY"])
        model = joblib.load(io.BytesIO(obj["Body"].read()))["pipeline"]
    body = json.loads(event["body"]) if "body" in event else event
    rows = body.get("instances", [body])
    frame = pd.DataFrame(rows)[FEATURES]
    proba = model.predict_proba(frame.to_numpy(dtype=np.float64))[:, 1]
    cloudwatch.put_metric_data(
        Namespace="BaselineModel",
        MetricData=[
            {
                "MetricName": "Latency",
                "Value": (time.time() - started) * 1000,
                "Unit": "Milliseconds",
            }
        ],
    )
    cloudwatch.put_metric_data(
        Namespace="BaselineModel",
        MetricData=[{"MetricName": "Predictions", "Value": len(rows), "Unit": "Count"}],
    )
    predictions = [{"prediction": int(p >= 0.5), "probability": float(p)} for p in proba]
    return {"statusCode": 200, "body": json.dumps({"predictions": predictions})}
