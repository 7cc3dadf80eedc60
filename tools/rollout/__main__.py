"""``python -m tools.rollout <command> --env <env> [--config cdk.json]``; see docs/deploying.md."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from serving import canary
from stacks.settings import (
    ANSWER_METRIC,
    DEFAULT_ARTIFACTS_ROOT,
    EnvironmentConfig,
    RolloutMode,
    stack_name_of,
)
from tools.rollout import gate, steps, verdict
from tools.rollout.config_file import (
    DeploymentConfig,
    RefusedError,
    model_key,
    parse_text,
    read,
    rollout_path,
    select_model,
)
from tools.rollout.live import (
    Comparison,
    Live,
    LiveUnavailableError,
    Side,
    from_environment,
    phrase,
)
from tools.rollout.plan import cdk_commands, next_steps, routing
from tools.rollout.steps import State, state_of
from training import tracked

DEFAULT_CONFIG = Path("cdk.json")
DEFAULT_COMPARE_MINUTES = 60
MAX_COMPARE_MINUTES = 14 * 24 * 60  # CloudWatch keeps 1-minute data for 15 days
EXIT_REFUSED = 2

LiveFactory = Callable[[str | None], Live]


def _weight(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a number: the candidate's share, e.g. 0.1 for 10 %"
        ) from None


def parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--env", required=True, help="environment in cdk.json (dev, prod)")
    common.add_argument(
        "--config", type=Path, default=DEFAULT_CONFIG, help="the cdk.json to edit (./cdk.json)"
    )
    common.add_argument(
        "--model",
        metavar="NAME",
        help="the model to move (default: the environment's model_name; others are listed "
        "under environments.<env>.models)",
    )
    top = argparse.ArgumentParser(
        prog="python -m tools.rollout",
        description="Canary, ramp, promote and roll back a model version; each step edits "
        "the environment's rollout block in cdk.json and prints the cdk commands to apply it.",
    )
    commands = top.add_subparsers(dest="command", required=True)
    commands.add_parser("status", parents=[common], help="configured and (with AWS) live routing")
    start = commands.add_parser("start", parents=[common], help="canary a new model version")
    start.add_argument(
        "--version", required=True, help="model version under model_artifacts/<model>/"
    )
    start.add_argument("--weight", type=_weight, help="candidate's share, 0 < W < 1 (manual)")
    start.add_argument(
        "--stable",
        type=int,
        help="the Lambda version serving now (PublishedVersion output); read from the stack "
        "when AWS credentials are present",
    )
    weight = commands.add_parser("set-weight", parents=[common], help="ramp the canary")
    weight.add_argument("weight", type=_weight, help="candidate's share, 0 < W < 1")
    commands.add_parser("promote", parents=[common], help="candidate takes all traffic")
    commands.add_parser("rollback", parents=[common], help="stable takes all traffic back")
    compare = commands.add_parser(
        "compare", parents=[common], help="stable vs candidate metrics (needs AWS)"
    )
    compare.add_argument(
        "--minutes",
        type=int,
        default=DEFAULT_COMPARE_MINUTES,
        help=f"window ending now (default {DEFAULT_COMPARE_MINUTES})",
    )
    defaults = canary.Thresholds()
    compare.add_argument(
        "--psi-watch",
        type=float,
        default=defaults.psi_watch,
        help=f"PSI from which the verdict is at least hold (default {defaults.psi_watch:g})",
    )
    compare.add_argument(
        "--psi-block",
        type=float,
        default=defaults.psi_block,
        help=f"PSI above which the verdict is roll back (default {defaults.psi_block:g})",
    )
    compare.add_argument(
        "--min-requests",
        type=int,
        default=defaults.min_requests,
        help="requests each side needs before the harm test judges (default "
        f"{defaults.min_requests}); rows of one request count once",
    )
    compare.add_argument(
        "--export",
        type=Path,
        metavar="FILE",
        help="judge a capture export (JSON lines, plain or .gz) with the canary evaluator's "
        "rule instead of asking AWS; the sides are two model versions in it",
    )
    compare.add_argument(
        "--stable-version",
        metavar="V",
        help="with --export: the stable side's model version (default: the older of two)",
    )
    compare.add_argument(
        "--candidate-version",
        metavar="V",
        help="with --export: the candidate's model version (default: the newer of two)",
    )
    return top


def main(
    argv: Sequence[str] | None = None,
    *,
    live_factory: LiveFactory = from_environment,
    now: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
    artifacts_root: Path = DEFAULT_ARTIFACTS_ROOT,
) -> int:
    args = parser().parse_args(argv)
    try:
        if args.command == "compare" and args.export is not None:
            return verdict.export(
                args.export, args.stable_version, args.candidate_version, _thresholds(args)
            )
        if args.command in ("status", "compare"):
            config_file = read(args.config)
            current = select_model(config_file.parse(args.env, artifacts_root), args.model)
            if args.command == "status":
                return status(config_file, current, args.env, live_factory)
            return compare(current, args.env, args.minutes, live_factory, now(), _thresholds(args))
        # A step reads, decides and writes under cdk.json's lock: a second command at the
        # same time is refused (naming this one), never silently overwritten.
        with tracked.edit(args.config) as editing:
            config_file = parse_text(args.config, editing.text())
            current = select_model(config_file.parse(args.env, artifacts_root), args.model)
            block = config_file.rollout_block(args.env, model_key(current))
            new_block = change(args, block, current, live_factory, artifacts_root)
            return apply(
                config_file, args.env, block, new_block, args.command, artifacts_root, current,
                write=editing.replace,
            )  # fmt: skip
    except (RefusedError, tracked.TrackedError) as refusal:
        print(f"refused: {refusal}", file=sys.stderr)
        return EXIT_REFUSED


def change(
    args: argparse.Namespace,
    block: Mapping[str, Any],
    current: EnvironmentConfig,
    live_factory: LiveFactory,
    artifacts_root: Path = DEFAULT_ARTIFACTS_ROOT,
) -> dict[str, Any]:
    rollout = current.rollout
    if args.command == "set-weight":
        return steps.set_weight(block, rollout, args.weight)
    if args.command == "promote":
        return steps.promote(block, rollout)
    if args.command == "rollback":
        return steps.rollback(block, rollout)
    assert args.command == "start"
    model = steps.check_model(
        artifacts_root, current.model.model_name, args.version, current.model.runtime
    )
    new_block = _start(args, block, current, live_factory, model)
    _gate(current, artifacts_root, model, new_block.get("stable_model_version"))
    return new_block


def _gate(
    current: EnvironmentConfig, artifacts_root: Path, model: str, stable_model: str | None
) -> None:
    """The deployed gate's checks on the local artifacts, before anything is written."""
    if stable_model is not None:
        # The stable model's bytes are held to its manifest like the candidate's.
        steps.check_model(
            artifacts_root, current.model.model_name, stable_model, current.model.runtime
        )
    try:
        lines = gate.check(
            artifacts_root,
            current.model.model_name,
            model,
            stable_model,
            current.model.runtime,
            current.quality_gate,
        )
    except gate.GateRefusedError as refusal:
        raise RefusedError(f"the traffic gate refuses --version {model}:\n{refusal}") from None
    print("\n".join(lines))
    print()


def _start(
    args: argparse.Namespace,
    block: Mapping[str, Any],
    current: EnvironmentConfig,
    live_factory: LiveFactory,
    model: str,
) -> dict[str, Any]:
    rollout = current.rollout
    if rollout.mode is RolloutMode.AUTOMATED:
        return steps.start_automated(
            block, rollout, model=model, weight=args.weight, stable_lambda_version=args.stable
        )
    stable, stable_model = args.stable, rollout.stable_model_version
    state = state_of(rollout)
    if state is State.ROLLED_BACK:
        stable = rollout.stable_lambda_version if stable is None else stable
    elif state is State.STEADY:
        stable_model = rollout.model_version
        if stable is None and args.weight is not None:
            stable, deployed_model = _published_version(current, live_factory)
            if deployed_model != rollout.model_version:
                print(
                    f"note: the stack runs {deployed_model}, cdk.json says "
                    f"{rollout.model_version}; recording {deployed_model} as the stable model"
                )
            stable_model = deployed_model
    return steps.start_manual(
        block,
        rollout,
        model=model,
        weight=args.weight,
        stable_lambda_version=stable,
        stable_model_version=stable_model,
    )


def _published_version(config: EnvironmentConfig, live_factory: LiveFactory) -> tuple[int, str]:
    stack = stack_name_of(config)
    try:
        outputs = live_factory(config.region).outputs(stack)
    except LiveUnavailableError as error:
        raise RefusedError(
            f"start needs the stable version: the currently published version is the "
            f"PublishedVersion output of stack {stack}, and reading it {phrase(error)}; "
            "pass --stable N (the PublishedVersion output of the last deploy)"
        ) from None
    published = outputs.get("PublishedVersion", "")
    if not published.isdigit():
        raise RefusedError(
            f"stack {stack} has no numeric PublishedVersion output ({published!r}); pass --stable N"
        )
    return int(published), outputs.get("ModelVersion", config.rollout.model_version)


def apply(
    config_file: DeploymentConfig,
    env: str,
    block: Mapping[str, Any],
    new_block: Mapping[str, Any],
    command: str,
    artifacts_root: Path,
    current: EnvironmentConfig,
    *,
    write: Callable[[str], None],
) -> int:
    """Check the edited config with the app's parser, write it with ``write`` (the
    compare-and-swap of ``tracked.Edit.replace``), print what changed and what to run."""
    model = model_key(current)
    updated = config_file.with_rollout(env, new_block, model)
    try:
        # The app's own parser decides: a config it would refuse is never written.
        config = select_model(updated.parse(env, artifacts_root), model)
    except RefusedError as error:
        raise RefusedError(
            f"{command} would write a configuration the app refuses: {error}"
        ) from None
    write(updated.text)
    at = rollout_path(env, model)
    print(f"{command}: wrote {at} in {config_file.path}")
    for key in new_block:
        if block.get(key) != new_block[key] or key not in block:
            print(f"  {key}: {_json(block.get(key))} -> {_json(new_block[key])}")
    print()
    _print_plan(config)
    if command == "promote":
        print(
            "  no new Lambda version: the candidate is the version already deployed; the "
            "alias and provisioned concurrency move to it"
        )
    elif command in ("set-weight", "rollback"):
        print("  no new Lambda version, no image build: only routing and provisioned concurrency")
    print("\napply it (commit cdk.json with the deploy, so the next person deploys the same):")
    for line in cdk_commands(config_file.path, env):
        print(f"  {line}")
    return 0


def _json(value: Any) -> str:
    return json.dumps(value)


def _print_plan(config: EnvironmentConfig) -> None:
    print(f"plan for {config.name} (mode {config.rollout.mode}):")
    for line in routing(config):
        print(f"  {line}")


def status(
    config_file: DeploymentConfig, config: EnvironmentConfig, env: str, live_factory: LiveFactory
) -> int:
    print(f"configured in {config_file.path}:")
    _print_plan(config)
    print("next steps:")
    model = model_key(config)
    which = "" if model is None else f" --model {model}"
    for command, meaning in next_steps(config):
        print(
            f"  python -m tools.rollout {command} --env {env}{which}".ljust(64) + f"  # {meaning}"
        )
    print()
    try:
        live = live_factory(config.region)
        outputs = live.outputs(stack_name_of(config))
        function = live.function_name(outputs)
        alias = live.alias(function)
        provisioned = live.provisioned_concurrency(function)
    except LiveUnavailableError as error:
        print(f"live status {phrase(error)}")
        return 0
    print(f"live (stack {stack_name_of(config)}):")
    for key in sorted(outputs):
        print(f"  {key}: {outputs[key]}")
    shares = ", ".join(f"version {v}: {share:.1%}" for v, share in alias.shares().items())
    print(f"  alias production: {shares}")
    pcs = ", ".join(f"version {q}: {text}" for q, text in sorted(provisioned.items()))
    print(f"  provisioned concurrency: {pcs or 'none'}")
    return 0


def _thresholds(args: argparse.Namespace) -> canary.Thresholds:
    try:
        return canary.Thresholds(
            min_requests=args.min_requests, psi_watch=args.psi_watch, psi_block=args.psi_block
        )
    except ValueError as error:
        raise RefusedError(
            f"--psi-watch {args.psi_watch:g} --psi-block {args.psi_block:g} --min-requests "
            f"{args.min_requests} is not allowed: {error}"
        ) from None


def compare(
    config: EnvironmentConfig,
    env: str,
    minutes: int,
    live_factory: LiveFactory,
    now: dt.datetime,
    thresholds: canary.Thresholds | None = None,
) -> int:
    if not 1 <= minutes <= MAX_COMPARE_MINUTES:
        raise RefusedError(f"--minutes {minutes} is not allowed: 1 to {MAX_COMPARE_MINUTES}")
    rollout = config.rollout
    end = now.replace(second=0, microsecond=0)
    start = end - dt.timedelta(minutes=minutes)
    try:
        live = live_factory(config.region)
        outputs = live.outputs(stack_name_of(config))
        function = live.function_name(outputs)
        deployed_model = outputs.get("ModelVersion", rollout.model_version)
        if rollout.stable_lambda_version is not None:
            sides = [
                Side("stable", str(rollout.stable_lambda_version), rollout.stable_model_version),
                Side("candidate", outputs.get("PublishedVersion", "?"), deployed_model),
            ]
        else:
            alias = live.alias(function)
            sides = [Side("stable", alias.version, rollout.stable_model_version)]
            sides += [Side("candidate", v, deployed_model) for v in alias.additional]
            if not alias.additional:
                sides = [Side("deployed", alias.version, deployed_model)]
        results = live.compare(
            function_name=function,
            namespace=config.function.metrics_namespace,
            sides=sides,
            start=start,
            end=end,
            task=config.model.task,
        )
    except LiveUnavailableError as error:
        print(f"compare {phrase(error)}")
        return 1
    print(
        f"compare {env} over {minutes} minutes, {start:%Y-%m-%d %H:%M} to {end:%H:%M} UTC "
        f"(alias production, per ExecutedVersion and ModelVersion):"
    )
    for line in comparison_table(results, config.model.task):
        print(f"  {line}")
    models = [s.model_version for s in sides]
    if len(sides) > 1 and len(set(models)) < len(models):
        print(
            "  note: both sides run the same model version; its model metrics (5xx answers "
            "included) are shared"
        )
    if any(s.model_version is None for s in sides):
        print("  note: the stable side's model is not recorded (rollout.stable_model_version)")
    if [s.label for s in sides] == ["stable", "candidate"]:
        print()
        verdict.live(live, function, results, start, end, thresholds, config.model.task)
    return 0


def comparison_table(results: Sequence[Comparison], task: str = "binary") -> list[str]:
    def number(value: float | None, pattern: str) -> str:
        return "no data" if value is None else pattern.format(value)

    def rate(result: Comparison) -> str:
        if result.error_rate is None:
            return "no data"
        return f"{result.error_rate:.2%} ({result.failed:.0f}/{result.invocations:.0f})"

    answer_format = "{:.6g}" if task == "regression" else "{:.4f}"
    rows: list[tuple[str, Callable[[Comparison], str]]] = [
        ("Lambda version", lambda r: r.side.lambda_version),
        ("model version", lambda r: r.side.model_version or "unknown"),
        ("invocations", lambda r: number(r.invocations, "{:.0f}")),
        ("error rate (incl. 5xx)", rate),
        ("5xx answers", lambda r: number(r.server_errors, "{:.0f}")),
        ("duration p99 (Lambda)", lambda r: number(r.duration_p99_ms, "{:.1f} ms")),
        ("inference latency p99", lambda r: number(r.inference_latency_p99_ms, "{:.1f} ms")),
        # A value is on the target's scale, a probability in [0, 1].
        (ANSWER_METRIC[task].title, lambda r: number(r.mean_probability, answer_format)),
    ]
    lines = ["".ljust(28) + "".join(r.side.label.ljust(24) for r in results)]
    for title, cell in rows:
        lines.append(title.ljust(28) + "".join(cell(r).ljust(24) for r in results))
    return [line.rstrip() for line in lines]


if __name__ == "__main__":
    sys.exit(main())
