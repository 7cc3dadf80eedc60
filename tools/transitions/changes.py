"""One deploy: the previous template and state in, CloudFormation's actions out.

CloudFormation updates a stack in two phases: it creates new resources and the
replacements of replaced ones (in dependency order), updates the rest in place, and only
in a final cleanup phase deletes removed resources and the old copies of replaced ones.
Physical names therefore exist twice for a while; see ``checks``.

Values are resolved against a ``State``: what each logical ID stands for after the
previous deploy. Lambda versions get numbers in publication order, the way
``PublishVersion`` hands them out; everything else gets a token that changes when the
resource is replaced, so that a property referring to a replaced resource changes too.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from tools.transitions.schemas import rules

FUNCTION_TYPE = "AWS::Lambda::Function"
VERSION_TYPE = "AWS::Lambda::Version"
ALIAS_TYPE = "AWS::Lambda::Alias"
IGNORED_TYPES = frozenset({"AWS::CDK::Metadata"})


class Action(StrEnum):
    CREATE = "created"
    UPDATE = "updated"
    REPLACE = "replaced"
    DELETE = "deleted"
    RETAIN = "retained"  # removed from the template, kept in the account (DeletionPolicy)
    NONE = "unchanged"


@dataclass
class State:
    """What the deployed stack's logical IDs stand for; carried from deploy to deploy."""

    function_name: str = "F"
    # Logical ID of a deployed AWS::Lambda::Version -> its number.
    versions: dict[str, int] = field(default_factory=dict)
    # Every version ever published, including those whose resource was removed (retained).
    published: set[int] = field(default_factory=set)
    # Versions whose resource CloudFormation deleted: a later reference to one fails.
    deleted_versions: set[int] = field(default_factory=set)
    # How often each logical ID has been (re)created: part of its token.
    generation: dict[str, int] = field(default_factory=dict)
    next_version: int = 1

    def copy(self) -> State:
        return copy.deepcopy(self)


@dataclass(frozen=True)
class ResourceChange:
    logical_id: str
    type: str
    action: Action
    # The properties whose change decided the action (create-only ones for a replacement).
    properties: tuple[str, ...] = ()


@dataclass(frozen=True)
class Deploy:
    previous: Mapping[str, Any]
    template: Mapping[str, Any]
    before: State
    after: State
    changes: dict[str, ResourceChange]

    def resolve_old(self, value: Any) -> Any:
        return resolve(value, self.previous, self.before)

    def resolve_new(self, value: Any) -> Any:
        return resolve(value, self.template, self.after)

    def by_action(self, action: Action) -> list[ResourceChange]:
        return sorted(
            (c for c in self.changes.values() if c.action is action), key=lambda c: c.logical_id
        )

    def published(self) -> list[int]:
        """Version numbers this deploy publishes, in order."""
        return sorted(
            self.after.versions[c.logical_id]
            for c in self.changes.values()
            if c.type == VERSION_TYPE and c.action in (Action.CREATE, Action.REPLACE)
        )


def resources(template: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    return {
        logical_id: resource
        for logical_id, resource in template.get("Resources", {}).items()
        if resource["Type"] not in IGNORED_TYPES
    }


def resolve(value: Any, template: Mapping[str, Any], state: State) -> Any:
    """``value`` with Ref, Fn::GetAtt, Fn::Join and pseudo parameters evaluated."""
    if isinstance(value, list):
        return [resolve(v, template, state) for v in value]
    if not isinstance(value, dict):
        return value
    if set(value) == {"Ref"}:
        return _ref(value["Ref"], template, state)
    if set(value) == {"Fn::GetAtt"}:
        logical_id, attribute = value["Fn::GetAtt"]
        return _get_att(logical_id, attribute, template, state)
    if set(value) == {"Fn::Join"}:
        separator, parts = value["Fn::Join"]
        return separator.join(str(resolve(p, template, state)) for p in parts)
    return {k: resolve(v, template, state) for k, v in value.items()}


def _token(logical_id: str, state: State) -> str:
    return f"<{logical_id}#{state.generation.get(logical_id, 0)}>"


def _ref(name: str, template: Mapping[str, Any], state: State) -> str:
    if name.startswith("AWS::"):
        return f"<{name}>"  # the same account, region and partition on every deploy
    resource_type = template.get("Resources", {}).get(name, {}).get("Type")
    if resource_type == FUNCTION_TYPE and _is_served_function(name, template):
        return state.function_name
    if resource_type == VERSION_TYPE and name in state.versions:
        return f"arn:function:{state.function_name}:{state.versions[name]}"
    if name in template.get("Parameters", {}):
        return f"<parameter {name}>"
    return _token(name, state)


def _get_att(logical_id: str, attribute: str, template: Mapping[str, Any], state: State) -> str:
    resource_type = template.get("Resources", {}).get(logical_id, {}).get("Type")
    if (
        resource_type == FUNCTION_TYPE
        and attribute == "Arn"
        and _is_served_function(logical_id, template)
    ):
        return f"arn:function:{state.function_name}"
    if resource_type == VERSION_TYPE and logical_id in state.versions:
        number = state.versions[logical_id]
        if attribute == "Version":
            return str(number)
        if attribute == "FunctionArn":
            return f"arn:function:{state.function_name}:{number}"
    return f"{_token(logical_id, state)}.{attribute}"


def _is_served_function(logical_id: str, template: Mapping[str, Any]) -> bool:
    """Whether ``logical_id`` is the function ``State.function_name`` stands for: the one
    whose versions the template publishes. Any other function (the drift monitor, a custom
    resource's provider) is a physical resource of its own, named by its token; a template
    that publishes no version keeps every function as the one."""
    versions = [
        r.get("Properties", {}).get("FunctionName")
        for r in template.get("Resources", {}).values()
        if r.get("Type") == VERSION_TYPE
    ]
    return not versions or {"Ref": logical_id} in versions


def _at(properties: Mapping[str, Any], path: tuple[str, ...]) -> Any:
    value: Any = properties
    for name in path:
        if not isinstance(value, Mapping):
            return None
        value = value.get(name)
    return value


def plan(previous: Mapping[str, Any], template: Mapping[str, Any], before: State) -> Deploy:
    """What CloudFormation does to go from ``previous`` (deployed in ``before``) to ``template``.

    Replacements propagate: a resource that refers to a replaced one sees a new value,
    which may replace it in turn, so the classification runs until nothing changes.
    """
    old = resources(previous)
    new = resources(template)
    replaced: set[str] = set()
    while True:
        after = _state_after(old, new, before, replaced)
        changes = {}
        for logical_id in sorted(old.keys() | new.keys()):
            changes[logical_id] = _classify(
                logical_id, old.get(logical_id), new.get(logical_id), previous, template, before,
                after,
            )  # fmt: skip
        now_replaced = {c.logical_id for c in changes.values() if c.action is Action.REPLACE}
        if now_replaced == replaced:
            return Deploy(previous, template, before, after, changes)
        replaced = now_replaced


def _state_after(
    old: Mapping[str, Any], new: Mapping[str, Any], before: State, replaced: set[str]
) -> State:
    after = before.copy()
    for logical_id in sorted(new):
        if logical_id not in old or logical_id in replaced:
            after.generation[logical_id] = before.generation.get(logical_id, 0) + 1
            if new[logical_id]["Type"] == VERSION_TYPE:
                # PublishVersion hands out the next number; CloudFormation creates the new
                # versions of one deploy in template order here (there is at most one).
                after.versions[logical_id] = after.next_version
                after.published.add(after.next_version)
                after.next_version += 1
    for logical_id in old.keys() - new.keys():
        after.versions.pop(logical_id, None)
    return after


def _classify(
    logical_id: str,
    old: Mapping[str, Any] | None,
    new: Mapping[str, Any] | None,
    previous: Mapping[str, Any],
    template: Mapping[str, Any],
    before: State,
    after: State,
) -> ResourceChange:
    if old is None:
        assert new is not None
        return ResourceChange(logical_id, new["Type"], Action.CREATE)
    if new is None:
        retained = old.get("DeletionPolicy") in ("Retain", "RetainExceptOnCreate")
        return ResourceChange(logical_id, old["Type"], Action.RETAIN if retained else Action.DELETE)
    if old["Type"] != new["Type"]:
        return ResourceChange(logical_id, new["Type"], Action.REPLACE, ("Type",))
    old_properties = resolve(old.get("Properties", {}), previous, before)
    new_properties = resolve(new.get("Properties", {}), template, after)
    create_only = rules(new["Type"]).create_only
    forced = tuple(
        "/".join(path)
        for path in create_only
        if _at(old_properties, path) != _at(new_properties, path)
    )
    if forced:
        return ResourceChange(logical_id, new["Type"], Action.REPLACE, forced)
    changed = tuple(
        sorted(
            k
            for k in old_properties.keys() | new_properties.keys()
            if old_properties.get(k) != new_properties.get(k)
        )
    )
    # Resource attributes: CloudFormation records them with the stack update (a new update
    # policy decides how this very update of an alias runs), though no property changes.
    attributes = tuple(
        name for name in RESOURCE_ATTRIBUTES if _attribute(old, name) != _attribute(new, name)
    )
    if changed or attributes:
        return ResourceChange(logical_id, new["Type"], Action.UPDATE, changed + attributes)
    return ResourceChange(logical_id, new["Type"], Action.NONE)


RESOURCE_ATTRIBUTES = ("DependsOn", "UpdatePolicy", "DeletionPolicy", "UpdateReplacePolicy")


def _attribute(resource: Mapping[str, Any], name: str) -> Any:
    value = resource.get(name)
    if name == "DependsOn":
        return sorted([value] if isinstance(value, str) else value or [])
    return value


def apply(deploy: Deploy) -> State:
    """The state after ``deploy`` succeeded (cleanup included)."""
    state = deploy.after.copy()
    for change in deploy.changes.values():
        if change.type != VERSION_TYPE:
            continue
        if change.action is Action.DELETE:
            number = deploy.before.versions.get(change.logical_id)
            if number is not None:
                state.deleted_versions.add(number)
    return state


def dependencies(template: Mapping[str, Any], logical_id: str) -> set[str]:
    """Logical IDs ``logical_id`` waits for: DependsOn, Ref and Fn::GetAtt."""
    resource = template["Resources"][logical_id]
    depends = resource.get("DependsOn", [])
    found = set([depends] if isinstance(depends, str) else depends)
    found.update(_references(resource.get("Properties", {})))
    return found & set(template["Resources"])


def _references(value: Any) -> Iterator[str]:
    if isinstance(value, list):
        for item in value:
            yield from _references(item)
    elif isinstance(value, dict):
        if set(value) == {"Ref"}:
            yield value["Ref"]
        elif set(value) == {"Fn::GetAtt"}:
            yield value["Fn::GetAtt"][0]
        else:
            for item in value.values():
                yield from _references(item)


def waits_for(template: Mapping[str, Any], logical_id: str, other: str) -> bool:
    """True when CloudFormation finishes ``other`` before it starts ``logical_id``."""
    seen: set[str] = set()
    pending = [logical_id]
    while pending:
        current = pending.pop()
        for dependency in dependencies(template, current):
            if dependency == other:
                return True
            if dependency not in seen:
                seen.add(dependency)
                pending.append(dependency)
    return False
