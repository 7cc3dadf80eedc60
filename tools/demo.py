"""`make demo`: what this project makes, run end to end on the embedded default."""

from __future__ import annotations

import json
from pathlib import Path

from serving import quality
from stacks.config import committed_context, load_committed
from stacks.settings import stack_name_of
from tools.batch.demo import show_batch_scoring
from tools.explain_demo import show_explanations
from tools.serve_demo import show_local_serving
from tools.synth_demo import show_cdk_synth

ROOT = Path(__file__).resolve().parent.parent
# How each task's holdout figures read (the manifest's "metrics", in its order).
METRIC_LABELS = {
    "roc_auc": "ROC AUC",
    "roc_auc_ovr": "ROC AUC (one-vs-rest)",
    "accuracy": "accuracy",
    "log_loss": "log loss",
    "brier_score": "Brier",
    "rmse": "RMSE",
    "mae": "MAE",
    "r2": "R2",
}


def describe_metrics(metrics: dict[str, float]) -> str:
    return ", ".join(
        f"{label} {metrics[key]:.4f}" for key, label in METRIC_LABELS.items() if key in metrics
    )


def show_models() -> None:
    print("== model artifacts (model_artifacts/) ==")
    for manifest_path in sorted(ROOT.glob("model_artifacts/*/*/manifest.json")):
        manifest = json.loads(manifest_path.read_text())
        task = manifest.get("task", "binary")
        metrics = manifest.get("metrics")
        figures = describe_metrics(metrics) if metrics else "no labelled holdout"
        print(f"{manifest['model_name']} {manifest['model_version']} ({task}): {figures}")
        print(f"  {quality.describe(manifest)}")
        for runtime, artifact in manifest["artifacts"].items():
            parity = artifact.get("parity")
            checked = (
                f"; parity with sklearn on {parity['rows']:,} rows: max |diff| "
                f"{parity['max_abs_diff']:.2g}, {parity['label_mismatches']} labels differ"
                if parity
                else ""
            )
            print(
                f"  {runtime:<9} {artifact['file']:<20} {artifact['size_bytes']:>7,} bytes, "
                f"sha256 {artifact['sha256'][:12]}...{checked}"
            )


def show_configured_models() -> None:
    """Every model each environment of cdk.json deploys, and the stack it lives in."""
    print("== configured models (cdk.json) ==")
    for env in committed_context()["environments"]:
        for model in load_committed(env).models:
            rollout = model.rollout
            print(
                f"{env}: {model.model.model_name} {rollout.model_version} "
                f"({model.model.runtime.value}), stack {stack_name_of(model)}"
            )


def main() -> None:
    show_models()
    show_configured_models()
    show_local_serving()
    show_explanations()
    show_batch_scoring()
    show_cdk_synth()


if __name__ == "__main__":
    main()
