"""Walk an environment through rollout steps and plan each deploy against the last.

Each step edits the cdk.json context the way a user does (the rollout block through the
rollout command's own step functions, other settings by hand), synthesizes the app as
``app.py`` does (cdk-nag attached), and plans the deploy from the previous template. The
stable version of a canary is the number the previous deploy published, as a user reads
it from the ``PublishedVersion`` output.
"""

from __future__ import annotations

import copy
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aws_cdk import App

from stacks.application import build_app
from stacks.config import committed_context, load_config
from tools.rollout import steps
from tools.transitions.changes import Deploy, State, apply, plan, resolve

STACK_KINDS = ("model-store", "inference")

Context = dict[str, Any]
# (context, the inference stack's PublishedVersion so far) -> the next context
Edit = Callable[[Context, int | None], Context]


@dataclass(frozen=True)
class Step:
    label: str
    edit: Edit
    # A new model (or new code) publishes exactly one version; nothing else publishes any.
    publishes: bool = False


@dataclass(frozen=True)
class Transition:
    step: str
    # Stack kind ("model-store", "inference") -> the planned deploy.
    deploys: Mapping[str, Deploy]
    published_version: int


def synthesize(context: Mapping[str, Any], outdir: Path) -> dict[str, dict[str, Any]]:
    """Stack kind -> template, exactly as ``app.py`` builds the app (nag included)."""
    app = App(context=dict(context), outdir=str(outdir))
    build_app(app, load_config(app.node.get_all_context()))
    assembly = app.synth()
    templates: dict[str, dict[str, Any]] = {}
    for stack in assembly.stacks:
        (kind,) = [k for k in STACK_KINDS if stack.stack_name.endswith(f"-{k}")]
        templates[kind] = dict(stack.template)
    return templates


def run(
    env: str,
    scenario: Sequence[Step],
    context: Context | None = None,
    *,
    workdir: Path | None = None,
) -> list[Transition]:
    """Deploy ``scenario`` step by step from an empty account.

    With ``workdir``, each step's cloud assembly stays in ``workdir/step-<n>`` (for the
    CDK CLI to diff); otherwise they go to a temporary directory.
    """
    context = copy.deepcopy(context if context is not None else committed_context())
    context["env"] = env
    states = {kind: State() for kind in STACK_KINDS}
    previous: dict[str, Mapping[str, Any]] = {kind: {"Resources": {}} for kind in STACK_KINDS}
    published: int | None = None
    transitions = []
    with tempfile.TemporaryDirectory(prefix="transitions-") as scratch:
        root = workdir if workdir is not None else Path(scratch)
        for index, step in enumerate(scenario):
            context = step.edit(copy.deepcopy(context), published)
            templates = synthesize(context, root / f"step-{index}")
            deploys = {}
            for kind in STACK_KINDS:
                deploy = plan(previous[kind], templates[kind], states[kind])
                deploys[kind] = deploy
                states[kind] = apply(deploy)
                previous[kind] = templates[kind]
            inference = deploys["inference"]
            published = int(
                resolve(inference.template["Outputs"]["PublishedVersion"]["Value"],
                        inference.template, inference.after)
            )  # fmt: skip
            transitions.append(Transition(step.label, deploys, published))
    return transitions


# ---------------------------------------------------------------------------- edits


def _environment(context: Context) -> dict[str, Any]:
    environment: dict[str, Any] = context["environments"][context["env"]]
    return environment


def _rollout_step(
    change: Callable[[Mapping[str, Any], Any, int | None], dict[str, Any]],
) -> Edit:
    def edit(context: Context, published: int | None) -> Context:
        rollout = load_config(context).rollout
        environment = _environment(context)
        environment["rollout"] = change(environment["rollout"], rollout, published)
        return context

    return edit


def keep() -> Edit:
    return lambda context, published: context


def start(model: str, weight: float | None) -> Edit:
    def change(block: Mapping[str, Any], rollout: Any, published: int | None) -> dict[str, Any]:
        if block.get("mode") == "automated":
            return steps.start_automated(
                block, rollout, model=model, weight=None, stable_lambda_version=None
            )
        # A canary next to the version serving now: after a rollback that is the stable
        # version, otherwise the one the last deploy published.
        stable = (
            rollout.stable_lambda_version
            if rollout.stable_lambda_version is not None
            else published
        )
        return steps.start_manual(
            block,
            rollout,
            model=model,
            weight=weight,
            stable_lambda_version=stable,
            stable_model_version=rollout.stable_model_version or rollout.model_version,
        )

    return _rollout_step(change)


def set_weight(weight: float) -> Edit:
    return _rollout_step(lambda block, rollout, _: steps.set_weight(block, rollout, weight))


def promote() -> Edit:
    return _rollout_step(lambda block, rollout, _: steps.promote(block, rollout))


def rollback() -> Edit:
    return _rollout_step(lambda block, rollout, _: steps.rollback(block, rollout))


def settings(path: str, value: Any) -> Edit:
    """Set ``a.b.c`` under the environment, as a user edits cdk.json."""

    def edit(context: Context, published: int | None) -> Context:
        *parents, last = path.split(".")
        target = _environment(context)
        for name in parents:
            target = target.setdefault(name, {})
        target[last] = value
        return context

    return edit


def model_version(version: str) -> Edit:
    """Deploy another model without a canary (edit rollout.model_version by hand)."""
    return settings("rollout.model_version", version)


def both(*edits: Edit) -> Edit:
    def edit(context: Context, published: int | None) -> Context:
        for one in edits:
            context = one(context, published)
        return context

    return edit


# ---------------------------------------------------------------------------- scenarios

# Only v1 and v2 are committed: a "new" model alternates between them, as a user who
# canaries an older model back would.
MANUAL_LIFECYCLE = (
    Step("first deploy (v1)", keep(), publishes=True),
    Step("canary v2 at 10 %", start("v2", 0.1), publishes=True),
    Step("ramp to 50 %", set_weight(0.5)),
    Step("promote v2", promote()),
    Step("canary v1 after a promote", start("v1", 0.1), publishes=True),
    Step("roll back", rollback()),
    Step("re-canary after a rollback (20 %)", set_weight(0.2)),
    Step("promote v1", promote()),
    Step("model change without a canary (v2)", model_version("v2"), publishes=True),
)

AUTOSCALING = {"max_total": 20, "target_utilization": 0.7}
SETTINGS_CHANGES = (
    Step("first deploy (v1)", keep(), publishes=True),
    Step("provisioned concurrency total 4 -> 6", settings("provisioned_concurrency.total", 6)),
    Step("canary v2 at 10 %", start("v2", 0.1), publishes=True),
    Step("autoscaling off", settings("provisioned_concurrency.autoscaling", None)),
    Step(
        "autoscaling on",
        settings("provisioned_concurrency.autoscaling", AUTOSCALING),
    ),
    Step("warmer on", settings("warmer.enabled", True)),
    Step("warmer off", settings("warmer.enabled", False)),
    # Capture settings are function configuration: switching it publishes a version.
    Step("capture off", settings("capture.enabled", False), publishes=True),
    Step("capture on", settings("capture.enabled", True), publishes=True),
    Step("promote v2", promote()),
    Step("provisioned concurrency off", settings("provisioned_concurrency", {"total": 0})),
    Step("provisioned concurrency back on (4)", settings("provisioned_concurrency",
         {"total": 4, "autoscaling": {"max_total": 20, "target_utilization": 0.7}})),
)  # fmt: skip

MODE_SWITCHES = (
    Step("first deploy (v1), manual", keep(), publishes=True),
    Step("switch to automated mode", settings("rollout.mode", "automated")),
    Step("automated deploy of v2", start("v2", None), publishes=True),
    Step("automated deploy of v1", start("v1", None), publishes=True),
    Step(
        "switch back to manual",
        both(
            settings("rollout.mode", "manual"),
            settings("rollout.stable_model_version", None),
            settings("rollout.deployment", None),
        ),
    ),
    Step("canary v2 at 10 % after automated mode", start("v2", 0.1), publishes=True),
)

# Provisioned concurrency without autoscaling: a promote and a rollback release the old
# version's allocation with no scalable target to deregister first.
WITHOUT_AUTOSCALING = (
    Step("first deploy (v1), autoscaling off",
         settings("provisioned_concurrency.autoscaling", None), publishes=True),
    Step("canary v2 at 10 %", start("v2", 0.1), publishes=True),
    Step("promote v2", promote()),
    Step("canary v1 at 10 %", start("v1", 0.1), publishes=True),
    Step("roll back", rollback()),
)  # fmt: skip

SCENARIOS: Mapping[str, Sequence[Step]] = {
    "manual lifecycle": MANUAL_LIFECYCLE,
    "settings changes": SETTINGS_CHANGES,
    "mode switches": MODE_SWITCHES,
    "without autoscaling": WITHOUT_AUTOSCALING,
}

# (scenario, environment) pairs the test suite and the docs table walk.
RUNS: tuple[tuple[str, str], ...] = (
    ("manual lifecycle", "prod"),
    ("manual lifecycle", "dev"),
    ("settings changes", "prod"),
    ("mode switches", "prod"),
    ("without autoscaling", "prod"),
)
