"""Names as cdk-nag prints them in finding IDs, for acknowledgements that name a resource.

cdk-nag writes a resource's attribute as ``<LogicalId.Arn>`` and a pseudo parameter as
``<AWS::AccountId>``; an acknowledgement must repeat the finding ID exactly.
"""

from __future__ import annotations

from aws_cdk import CfnElement, Stack
from constructs import IConstruct


def logical_id(construct: IConstruct) -> str:
    """The logical ID of ``construct``'s CloudFormation resource."""
    child = construct.node.default_child
    assert isinstance(child, CfnElement), construct.node.path
    return Stack.of(construct).get_logical_id(child)


def rendered(scope: IConstruct, value: str) -> str:
    """A string that may hold tokens (e.g. a bucket name), as a finding ID shows it."""
    resolved = Stack.of(scope).resolve(value)
    if isinstance(resolved, str):
        return resolved
    parts = resolved["Fn::Join"][1]
    return "".join(p if isinstance(p, str) else f"<{p['Ref']}>" for p in parts)
