"""Demo step: synthesize the CDK app with the real CLI and summarise what it would deploy."""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
# The committed environments, and one canary to show the alias split (not committed).
RUNS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("dev", ("env=dev",)),
    ("prod", ("env=prod",)),
    (
        "prod, canary example",
        ("env=prod", "model_version=v2", "stable_version=7", "canary_weight=0.1"),
    ),
)


def synth(outdir: Path, context: tuple[str, ...]) -> dict[str, dict[str, Any]]:
    args = ["npx", "--no-install", "cdk", "synth", "--quiet", "-o", str(outdir)]
    for item in context:
        args += ["-c", item]
    env = {**os.environ, "CDK_DISABLE_VERSION_CHECK": "1", "CI": "true"}
    result = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise SystemExit(f"cdk synth {' '.join(context)} failed:\n{result.stderr[-2000:]}")
    return {
        path.name.removesuffix(".template.json"): json.loads(path.read_text())
        for path in sorted(outdir.glob("*.template.json"))
    }


def routing(template: dict[str, Any]) -> str:
    resources = template["Resources"].values()
    alias = next(r["Properties"] for r in resources if r["Type"] == "AWS::Lambda::Alias")
    main = alias["FunctionVersion"]
    main_name = main if isinstance(main, str) else "this deploy's version"
    weights = alias.get("RoutingConfig", {}).get("AdditionalVersionWeights", [])
    if not weights:
        return f"alias {alias['Name']} -> 100% {main_name}"
    weight = weights[0]["FunctionWeight"]
    return (
        f"alias {alias['Name']} -> {1 - weight:.0%} stable version {main_name}, "
        f"{weight:.0%} candidate (this deploy's version)"
    )


def provisioned(template: dict[str, Any]) -> str:
    resources = template["Resources"].values()
    settle = next(
        r["Properties"]
        for r in resources
        if r["Type"] == "Custom::ProvisionedConcurrency" and r["Properties"]["Phase"] == "settle"
    )
    parts = [
        f"{a['Executions']} on "
        + (f"version {a['Qualifier']}" if isinstance(a["Qualifier"], str) else "this deploy's")
        for a in settle["Allocations"]
    ]
    return "provisioned concurrency: " + (", ".join(parts) or "none")


def show_cdk_synth() -> None:
    print("== cdk synth (real CLI, no AWS account needed) ==")
    for label, context in RUNS:
        with tempfile.TemporaryDirectory(prefix="cdk-demo-") as out:
            templates = synth(Path(out), context)
        print(f"{label}:")
        for name, template in templates.items():
            counts = Counter(r["Type"] for r in template["Resources"].values())
            print(f"  {name}: {sum(counts.values())} resources")
            if "-inference" in name:
                function = next(
                    r["Properties"]
                    for r in template["Resources"].values()
                    if r["Type"] == "AWS::Lambda::Function"
                    and "MODEL_KEY" in r["Properties"].get("Environment", {}).get("Variables", {})
                )
                variables = function["Environment"]["Variables"]
                print(
                    f"    model {variables['MODEL_NAME']} {variables['MODEL_VERSION']} "
                    f"({variables['MODEL_RUNTIME']}), sha256 {variables['MODEL_SHA256'][:12]}..."
                )
                # Content-addressed: a retrained version gets a new key, never the old one.
                print(f"    key {variables['MODEL_KEY']}")
                print(f"    {routing(template)}")
                print(f"    {provisioned(template)}")
                rules = [
                    r["Properties"].get("Description", "")
                    for r in template["Resources"].values()
                    if r["Type"] == "AWS::Events::Rule"
                ]
                warmer = "on" if any("Warm-up" in d for d in rules) else "off"
                monitors = [
                    name
                    for name, marker in (("drift", "Drift monitor"), ("canary", "Canary evaluator"))
                    if any(marker in d for d in rules)
                ]
                gate = "custom resource" if counts["Custom::TrafficGate"] else "CodeDeploy hook"
                print(
                    f"    warmer: {warmer}, alarms: {counts['AWS::CloudWatch::Alarm']}, "
                    f"monitors: {', '.join(monitors) or 'none'}, traffic gate: {gate}"
                )
