"""CloudFormation's resource provider schemas, as cfn-lint ships them.

Each schema names the properties whose change forces a replacement
(``createOnlyProperties``) and the properties that identify the physical resource
(``primaryIdentifier``). Reading them, not a list of our own, is what makes the
transition checks a model of CloudFormation rather than of our memory of it.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

from cfnlint.schema import PROVIDER_SCHEMA_MANAGER

# Any region that has every type the app uses; the schemas agree across commercial regions.
SCHEMA_REGION = "us-east-1"
PROPERTY_PREFIX = "/properties/"


@dataclass(frozen=True)
class TypeRules:
    # Each path is a tuple of property names, e.g. ("ResourceId",).
    create_only: tuple[tuple[str, ...], ...]
    primary_identifier: tuple[tuple[str, ...], ...]


def _paths(pointers: list[str]) -> tuple[tuple[str, ...], ...]:
    return tuple(
        tuple(p.removeprefix(PROPERTY_PREFIX).split("/"))
        for p in pointers
        if p.startswith(PROPERTY_PREFIX)
    )


@cache
def rules(resource_type: str) -> TypeRules:
    if resource_type.startswith("Custom::") or resource_type == (
        "AWS::CloudFormation::CustomResource"
    ):
        # A custom resource is updated in place for any change but its provider; CloudFormation
        # refuses a changed ServiceToken rather than replacing the resource.
        return TypeRules(create_only=(("ServiceToken",),), primary_identifier=())
    schema = PROVIDER_SCHEMA_MANAGER.get_resource_schema(SCHEMA_REGION, resource_type).schema
    return TypeRules(
        create_only=_paths(schema.get("createOnlyProperties", [])),
        primary_identifier=_paths(schema.get("primaryIdentifier", [])),
    )
