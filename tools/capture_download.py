"""A capture export from the capture bucket: the objects of the last days, as JSON lines.

The delivery stream writes gzip-compressed JSON lines under
``captures/model=<name>/version=<v>/date=<YYYY-MM-DD>/``; this reads the objects of one
model's last ``days`` dates (every version) and writes them, decompressed, into one local
file that serving.capture_export reads like any export. The bucket holds customer data: the
file is written with owner-only permissions, and the caller removes it.
"""

from __future__ import annotations

import datetime as dt
import gzip
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from stacks.constructs.capture_bucket import CAPTURE_PREFIX

_DATE = re.compile(r"/date=(\d{4}-\d{2}-\d{2})/")


def keys(s3: Any, bucket: str, model_name: str, since: dt.date) -> Iterator[str]:
    """Object keys of ``model_name``'s captures dated ``since`` or later."""
    prefix = f"{CAPTURE_PREFIX}model={model_name}/"
    token: str | None = None
    while True:
        page = s3.list_objects_v2(
            Bucket=bucket, Prefix=prefix, **({"ContinuationToken": token} if token else {})
        )
        for item in page.get("Contents", []):
            match = _DATE.search(item["Key"])
            if match and dt.date.fromisoformat(match.group(1)) >= since:
                yield item["Key"]
        token = page.get("NextContinuationToken")
        if not page.get("IsTruncated") or not token:
            return


def download(
    s3: Any, bucket: str, model_name: str, since: dt.date, destination: Path
) -> tuple[int, int]:
    """Write the captures into ``destination``; (objects, bytes) read."""
    objects = size = 0
    descriptor = os.open(destination, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "wb") as out:
        for key in keys(s3, bucket, model_name, since):
            body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
            data = gzip.decompress(body) if body[:2] == b"\x1f\x8b" else body
            out.write(data if data.endswith(b"\n") or not data else data + b"\n")
            objects += 1
            size += len(body)
    return objects, size
