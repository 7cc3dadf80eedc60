"""The traffic gate as CodeDeploy's ``BeforeAllowTraffic`` hook (automated rollouts).

The versions come from the deployment's AppSpec (``TargetVersion`` is the candidate,
``CurrentVersion`` the stable), the rest from the function's environment
(``traffic_gate.settings.ENVIRONMENT``). The outcome is reported with
``PutLifecycleEventHookExecutionStatus``: Failed stops the shift before any traffic moves.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from serving.golden_sets import GateError
from traffic_gate.run import NO_DEADLINE, Deadline, run_gate
from traffic_gate.settings import ENVIRONMENT, read_settings


def appspec_content(revision: Mapping[str, Any] | None) -> str | None:
    """The AppSpec text of a RevisionLocation (``AppSpecContent`` or ``String``), if given."""
    if not revision:
        return None
    for member in ("appSpecContent", "string"):
        content = (revision.get(member) or {}).get("content")
        if content:
            return str(content)
    return None


def read_appspec(codedeploy: Any, deployment_id: str) -> str:
    """The deployment's AppSpec. GetDeployment may leave the content out of its answer
    ("Required: No"); the revision it names is then read with GetApplicationRevision."""
    info = codedeploy.get_deployment(deploymentId=deployment_id)["deploymentInfo"]
    content = appspec_content(info.get("revision"))
    if content:
        return content
    application, revision = info.get("applicationName"), info.get("revision")
    if not application or not revision:
        raise GateError(
            f"GetDeployment answered no AppSpec content, application name or revision for "
            f"deployment {deployment_id}"
        )
    answer = codedeploy.get_application_revision(applicationName=application, revision=revision)
    content = appspec_content(answer.get("revision"))
    if not content:
        raise GateError(
            "neither GetDeployment nor GetApplicationRevision answered the AppSpec content of "
            f"deployment {deployment_id} (application {application})"
        )
    return content


def appspec_versions(content: str) -> tuple[str, str, str]:
    """(function name, current version, target version) from a Lambda AppSpec."""
    spec = json.loads(content)
    for resource in spec.get("Resources", []):
        for value in resource.values():
            props = value.get("Properties", {})
            if value.get("Type") == "AWS::Lambda::Function" and props.get("TargetVersion"):
                return str(props["Name"]), str(props["CurrentVersion"]), str(props["TargetVersion"])
    raise GateError("the deployment's AppSpec names no Lambda function with a TargetVersion")


def qualified(function: str, version: str) -> str:
    return f"{function}:{version}"


def on_hook(
    event: Mapping[str, Any],
    env: Mapping[str, str],
    *,
    lambda_client: Any,
    s3: Any,
    codedeploy: Any,
    deadline: Deadline = NO_DEADLINE,
) -> str:
    """Check the deployment's target version and report; returns the status sent."""
    deployment_id = event["DeploymentId"]
    status = "Failed"
    try:
        function, current, target = appspec_versions(read_appspec(codedeploy, deployment_id))
        checked = read_settings(
            env,
            ENVIRONMENT,
            candidate_function=qualified(function, target),
            stable_function=qualified(function, current) if current != target else None,
        )
        verdict = run_gate(checked, lambda_client=lambda_client, s3=s3, deadline=deadline)
        for line in verdict.lines():
            print(line)
        status = "Succeeded" if verdict.passed else "Failed"
    except Exception as error:  # any failure must reach CodeDeploy, or the shift waits for it
        print(f"traffic gate could not run: {type(error).__name__}: {error}")
    codedeploy.put_lifecycle_event_hook_execution_status(
        deploymentId=deployment_id,
        lifecycleEventHookExecutionId=event["LifecycleEventHookExecutionId"],
        status=status,
    )
    return status
