"""The traffic gate as a CloudFormation custom resource (manual rollouts).

Ordered after the version is published and before the alias moves: FAILED fails the
deploy before the alias update; Delete always succeeds. The check runs only when the
candidate's traffic grows (``not_needed``). The properties are listed in
``traffic_gate.handler``'s docstring and read by ``traffic_gate.settings``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from custom_resource.response import REASON_MAX_CHARS
from serving.golden_sets import GateError
from traffic_gate.run import NO_DEADLINE, Deadline, run_gate
from traffic_gate.settings import PROPERTIES, GateSettings, read_settings, required


def settings_from_properties(properties: Mapping[str, Any]) -> GateSettings:
    return read_settings(
        properties,
        PROPERTIES,
        candidate_function=required(properties, "FunctionArn"),
        stable_function=properties.get("StableFunctionArn") or None,
    )


def _candidate_weight(text: Any) -> float:
    try:
        value = float(text)
    except (TypeError, ValueError):
        value = math.nan
    if not 0 <= value <= 1:
        raise GateError(f"CandidateWeight={text!r} is not allowed: a number from 0 to 1")
    return value


def not_needed(properties: Mapping[str, Any], *, lambda_client: Any) -> str | None:
    """Why the gate need not check the candidate, or None when it must.

    The gate stands between a version and traffic it does not have yet. It does not run
    when the candidate takes no traffic after this deploy (``CandidateWeight`` 0: a roll
    back, which must not wait for the version it rolls back), nor when ``GetAlias`` shows
    that the alias already routes the candidate (a ramp, a promote, an update-rollback
    re-sending the previous template's properties): it passed before it took traffic.
    A missing alias (the first deploy) routes nothing. Properties of a template of an
    earlier release carry no ``CandidateWeight``: the gate runs, as it did then."""
    if properties.get("CandidateWeight") is None:
        return None
    candidate = required(properties, "FunctionArn")
    if _candidate_weight(properties["CandidateWeight"]) == 0:
        return f"not checked: {candidate} takes no traffic after this deploy (CandidateWeight 0)"
    function, alias = properties.get("FunctionName"), properties.get("AliasName")
    if not function or not alias:
        return None
    version = candidate.rsplit(":", 1)[-1]
    try:
        current = lambda_client.get_alias(FunctionName=function, Name=alias)
    except lambda_client.exceptions.ResourceNotFoundException:
        return None  # the first deploy: no alias, nothing routed yet
    except lambda_client.exceptions.ClientError as error:
        # Not knowing what the alias routes is no reason to skip the check: it runs.
        print(f"GetAlias {function}:{alias} failed, so the gate checks {candidate}: {error}")
        return None
    weights = (current.get("RoutingConfig") or {}).get("AdditionalVersionWeights") or {}
    if current.get("FunctionVersion") == version or weights.get(version, 0) > 0:
        return (
            f"not checked: alias {alias} already routes version {version}, so it passed the "
            "gate before it took traffic"
        )
    return None


def on_custom_resource(
    event: Mapping[str, Any], *, lambda_client: Any, s3: Any, deadline: Deadline = NO_DEADLINE
) -> tuple[str, str, str]:
    """(status, reason, physical id) for a CloudFormation request."""
    properties = event.get("ResourceProperties", {})
    physical_id = str(properties.get("FunctionArn", "traffic-gate"))
    if event.get("RequestType") == "Delete":
        return "SUCCESS", "nothing to undo", event.get("PhysicalResourceId", physical_id)
    try:
        why_not = not_needed(properties, lambda_client=lambda_client)
        if why_not is not None:
            print(why_not)
            return "SUCCESS", why_not, physical_id
        verdict = run_gate(
            settings_from_properties(properties),
            lambda_client=lambda_client,
            s3=s3,
            deadline=deadline,
        )
    except GateError as error:
        return "FAILED", f"traffic gate could not run: {error}"[:REASON_MAX_CHARS], physical_id
    for line in verdict.lines():
        print(line)
    status = "SUCCESS" if verdict.passed else "FAILED"
    return status, verdict.reason()[:REASON_MAX_CHARS], physical_id
