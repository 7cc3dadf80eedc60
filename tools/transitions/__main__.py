"""``python -m tools.transitions``: what each rollout step does on deploy, as Markdown.

Walks the scenarios of ``tools.transitions.scenarios`` (synthesizing the app for every
step, about a minute) and prints one table per walk; docs/rollout-transitions.md holds the
output between its markers, and a test keeps the two equal.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Mapping, Sequence

from tools.transitions import checks, scenarios
from tools.transitions.changes import VERSION_TYPE, Action, Deploy
from tools.transitions.scenarios import Transition

BEGIN = "<!-- transitions:begin (python -m tools.transitions) -->"
END = "<!-- transitions:end -->"
# CDK appends an 8-digit hash to each logical ID (versions: a longer one).
_HASH = re.compile(r"(CurrentVersion)[0-9A-F]{8}[0-9a-f]{32}$|[0-9A-F]{8}$")
_NOISE = ("ReconcilerRoleDefaultPolicy", "ReconcilerLogs")


def readable(logical_id: str) -> str:
    return _HASH.sub(lambda m: m.group(1) or "", logical_id)


def _names(deploy: Deploy, action: Action) -> str:
    names = []
    for change in deploy.by_action(action):
        name = "new Version" if change.type == VERSION_TYPE else readable(change.logical_id)
        if change.type == VERSION_TYPE and action is Action.RETAIN:
            name = f"Version {deploy.before.versions[change.logical_id]} (kept)"
        names.append(name)
    return ", ".join(names) or "-"


def capacity(previous: Transition | None, transition: Transition) -> tuple[str, str, str]:
    """(before the alias moves, after it, can a request meet a cold environment)."""
    deploy = transition.deploys["inference"]
    wanted = checks.allocations(deploy)
    routes = next(iter(checks.routing(deploy).values()))
    before_routes: dict[str, float] = {}
    if previous is not None:
        before_routes = next(iter(checks.routing(previous.deploys["inference"]).values()))
    autoscaled = "Autoscaling" in _scale_up(deploy)
    if not wanted:
        warmed = any(
            r["Type"] == "AWS::Events::Rule" for r in deploy.template["Resources"].values()
        )
        cold = "yes: no provisioned concurrency" + (
            "; the warmer keeps one environment of each version initialised" if warmed else ""
        )
        released = [v for v in before_routes if v not in routes]
        return "-", _released(released), cold
    ups = []
    for version, executions in wanted.items():
        grows = routes.get(version, 0.0) > before_routes.get(version, 0.0)
        share = " or its share of the serving capacity" if autoscaled and grows else ""
        ups.append(f"v{version}: {executions}{share}")
    released = [v for v in before_routes if v not in routes]
    cold = "no" if not checks.cold_versions(deploy) else "yes"
    return "; ".join(ups), _released(released), cold


def _scale_up(deploy: Deploy) -> dict[str, object]:
    phases = checks.provisioned_concurrency_phases(deploy.template)
    properties: dict[str, object] = deploy.template["Resources"][phases["scale_up"]]["Properties"]
    return properties


def _released(versions: Sequence[str]) -> str:
    return ", ".join(f"v{v} released" for v in versions) or "-"


def table(transitions: Sequence[Transition]) -> list[str]:
    lines = [
        "| step | publishes | created | replaced | deleted or retained | capacity before the "
        "alias moves | after | cold environment possible |",
        "|---|---|---|---|---|---|---|---|",
    ]
    previous = None
    for transition in transitions:
        deploy = transition.deploys["inference"]
        published = ", ".join(f"v{n}" for n in deploy.published()) or "-"
        removed = ", ".join(
            part
            for part in (_names(deploy, Action.DELETE), _names(deploy, Action.RETAIN))
            if part != "-"
        )
        before, after, cold = capacity(previous, transition)
        created = _names(deploy, Action.CREATE) if previous is not None else "everything"
        created = ", ".join(n for n in created.split(", ") if not n.startswith(_NOISE))
        lines.append(
            f"| {transition.step} | {published} | {created or '-'} | "
            f"{_names(deploy, Action.REPLACE)} | {removed or '-'} | {before} | {after} | {cold} |"
        )
        previous = transition
    return lines


def render(walked: Mapping[tuple[str, str], Sequence[Transition]] | None = None) -> str:
    """The tables of every run; ``walked`` reuses transitions already planned."""
    out = []
    for name, env in scenarios.RUNS:
        transitions = (
            walked[(name, env)]
            if walked is not None
            else scenarios.run(env, scenarios.SCENARIOS[name])
        )
        out += [f"### {name} ({env})", "", *table(transitions), ""]
    return "\n".join(out).rstrip() + "\n"


def documented(text: str) -> str:
    """The generated part of docs/rollout-transitions.md."""
    start = text.index(BEGIN) + len(BEGIN)
    return text[start : text.index(END)].strip() + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.transitions", description=__doc__)
    parser.parse_args(argv)
    sys.stdout.write(render())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
