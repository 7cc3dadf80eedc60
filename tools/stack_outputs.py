"""AWS clients from the default credential chain, and a deployed stack's outputs.

Shared by the commands that read what is deployed (tools.drift --env, tools.outcomes
--env, tools.rollout's live view).
"""

from __future__ import annotations

from typing import Any


def clients(region: str | None, *services: str) -> tuple[Any, ...]:
    import boto3

    session = boto3.Session(region_name=region) if region else boto3.Session()
    return tuple(session.client(service) for service in services)


def stack_outputs(cloudformation: Any, stack: str) -> dict[str, str]:
    """OutputKey -> OutputValue of ``stack``."""
    (described,) = cloudformation.describe_stacks(StackName=stack)["Stacks"]
    return {o["OutputKey"]: o["OutputValue"] for o in described.get("Outputs", [])}
