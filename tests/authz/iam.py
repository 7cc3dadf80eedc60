"""IAM policy evaluation, as the IAM User Guide's "Policy evaluation logic" states it.

For one request (principal, action, resource ARN, request context keys) and the policies
that apply to it (the principal's identity policies, or a resource's policy):

* an explicit Deny in any statement that matches wins;
* otherwise an Allow in a statement that matches is needed; nothing matching is an
  implicit deny.

A statement matches when its Action (or NotAction), Resource (or NotResource), Principal
(resource policies) and every Condition operator match. Wildcards ``*`` and ``?`` match
in actions (case-insensitively) and in ARNs (case-sensitively). A condition on a key the
request does not supply is false, except with the ``...IfExists`` operators and ``Null``
(IAM User Guide, "IAM JSON policy elements: Condition operators"). An operator the
evaluator does not know raises: a new kind of condition must be taught, not ignored.
Same-account only: no permission boundaries, SCPs or session policies exist in these
stacks, and the stacks grant nothing across accounts.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Request:
    action: str  # "lambda:GetAlias"
    resource: str  # the ARN IAM checks, or "*" for actions without a resource type
    # Condition keys the request carries (aws:SourceArn, cloudwatch:namespace, ...).
    context: Mapping[str, str | Sequence[str]] = field(default_factory=dict)
    # Resource policies only: the calling principal, as {"Service": ...} or {"AWS": ...}.
    principal: Mapping[str, str] | None = None


@dataclass(frozen=True)
class Statement:
    """One statement, with where it came from (policy name and index) for reports."""

    source: str
    body: Mapping[str, Any]

    @property
    def effect(self) -> str:
        return str(self.body.get("Effect"))

    def describe(self) -> str:
        keys = [k for k in ("Sid",) if k in self.body]
        sid = f" ({self.body[keys[0]]})" if keys else ""
        actions = self.body.get("Action", self.body.get("NotAction"))
        resources = self.body.get("Resource", self.body.get("NotResource"))
        return f"{self.source}{sid}: {self.effect} {actions} on {resources}"


@dataclass(frozen=True)
class Decision:
    allowed: bool
    allowed_by: tuple[Statement, ...]
    denied_by: tuple[Statement, ...]


def statements(source: str, document: Mapping[str, Any]) -> list[Statement]:
    body = document.get("Statement", [])
    items = [body] if isinstance(body, Mapping) else list(body)
    return [Statement(f"{source}[{index}]", item) for index, item in enumerate(items)]


def evaluate(policies: Iterable[Statement], request: Request) -> Decision:
    allows, denies = [], []
    for statement in policies:
        if not matches(statement.body, request):
            continue
        if statement.effect == "Deny":
            denies.append(statement)
        elif statement.effect == "Allow":
            allows.append(statement)
        else:
            raise ValueError(f"{statement.source}: Effect {statement.effect!r}")
    return Decision(bool(allows) and not denies, tuple(allows), tuple(denies))


def _as_list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, list | tuple) else [value]


def _wildcard(pattern: str, value: str, *, case: bool) -> bool:
    if not case:
        pattern, value = pattern.lower(), value.lower()
    # fnmatch's [] classes have no meaning in IAM: escape them.
    escaped = pattern.replace("[", "[[]")
    return re.fullmatch(fnmatch.translate(escaped), value, flags=re.DOTALL) is not None


def _action_matches(patterns: Any, action: str) -> bool:
    return any(_wildcard(str(p), action, case=False) for p in _as_list(patterns))


def _resource_matches(patterns: Any, resource: str) -> bool:
    return any(_wildcard(str(p), resource, case=True) for p in _as_list(patterns))


def _principal_matches(principal: Any, caller: Mapping[str, str] | None) -> bool:
    if principal is None:
        return caller is None  # identity policies carry no Principal
    if caller is None:
        return False
    # "*" and {"AWS": "*"} name every principal, services included.
    if principal == "*" or "*" in _as_list(principal.get("AWS", [])):
        return True
    return any(
        value == "*" or value in _as_list(principal.get(kind, [])) for kind, value in caller.items()
    )


def _element_allows(
    body: Mapping[str, Any], element: str, value: str, match: Callable[[Any, str], bool]
) -> bool | None:
    """Whether ``body``'s ``element`` (or its ``Not`` form) lets ``value`` through; None when
    the statement has neither."""
    if element in body:
        return match(body[element], value)
    if f"Not{element}" in body:
        return not match(body[f"Not{element}"], value)
    return None


def matches(body: Mapping[str, Any], request: Request) -> bool:
    action = _element_allows(body, "Action", request.action, _action_matches)
    if action is None:
        raise ValueError(f"statement without Action or NotAction: {body}")
    if not action:
        return False
    resource = _element_allows(body, "Resource", request.resource, _resource_matches)
    if resource is None and request.principal is None:
        # Identity policies need a Resource; a resource policy's statements may omit it.
        raise ValueError(f"identity statement without Resource: {body}")
    if resource is False:
        return False
    if (request.principal is not None or "Principal" in body) and not _principal_matches(
        body.get("Principal"), request.principal
    ):
        return False
    return all(
        _condition(operator, key, values, request.context)
        for operator, block in body.get("Condition", {}).items()
        for key, values in block.items()
    )


_STRING = {
    "StringEquals": lambda p, v: p == v,
    "StringNotEquals": lambda p, v: p != v,
    "StringEqualsIgnoreCase": lambda p, v: p.lower() == v.lower(),
    "StringLike": lambda p, v: _wildcard(p, v, case=True),
    "StringNotLike": lambda p, v: not _wildcard(p, v, case=True),
    "ArnEquals": lambda p, v: p == v,
    "ArnLike": lambda p, v: _wildcard(p, v, case=True),
    "ArnNotEquals": lambda p, v: p != v,
    "ArnNotLike": lambda p, v: not _wildcard(p, v, case=True),
    "Bool": lambda p, v: p.lower() == v.lower(),
}
_NEGATED = {"StringNotEquals", "StringNotLike", "ArnNotEquals", "ArnNotLike"}


def _lookup(context: Mapping[str, Any], key: str) -> list[str] | None:
    # Condition key names are case-insensitive.
    for name, value in context.items():
        if name.lower() == key.lower():
            return [str(v) for v in _as_list(value)]
    return None


def _condition(operator: str, key: str, expected: Any, context: Mapping[str, Any]) -> bool:
    present = _lookup(context, key)
    if operator == "Null":
        wants_null = str(_as_list(expected)[0]).lower() == "true"
        return (present is None) == wants_null
    if_exists = operator.endswith("IfExists")
    base = operator.removesuffix("IfExists")
    if base not in _STRING:
        raise ValueError(f"condition operator {operator!r} is not modelled")
    if present is None:
        return if_exists
    test = _STRING[base]
    patterns = [str(p) for p in _as_list(expected)]
    if base in _NEGATED:
        # Negated operators: true when the value matches none of the patterns.
        return all(all(test(p, v) for p in patterns) for v in present)
    return any(test(p, v) for p in patterns for v in present)
