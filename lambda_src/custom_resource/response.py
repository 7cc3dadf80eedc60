"""The answer a custom-resource function owes CloudFormation: one PUT to the pre-signed URL.

CloudFormation waits (up to an hour) for this PUT; every path of a handler must reach it.
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Mapping
from typing import Any

# CloudFormation keeps at most this much of a reason; longer is cut by the caller, which
# knows which end of its text matters.
REASON_MAX_CHARS = 1000


def respond(event: Mapping[str, Any], status: str, reason: str, physical_id: str) -> None:
    """PUT ``status`` (SUCCESS or FAILED) with ``reason`` for the request ``event`` names."""
    body = json.dumps(
        {
            "Status": status,
            "Reason": reason,
            "PhysicalResourceId": physical_id,
            "StackId": event["StackId"],
            "RequestId": event["RequestId"],
            "LogicalResourceId": event["LogicalResourceId"],
        }
    ).encode()
    request = urllib.request.Request(  # noqa: S310 - the pre-signed https URL CloudFormation gave
        event["ResponseURL"], data=body, method="PUT", headers={"Content-Type": ""}
    )
    with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
        response.read()
