"""`make demo`: what this project makes, run end to end on the embedded default."""

from __future__ import annotations

import json
from pathlib import Path

from tools.serve_demo import show_local_serving
from tools.synth_demo import show_cdk_synth
from training import gate

ROOT = Path(__file__).resolve().parent.parent


def show_models() -> None:
    print("== model artifacts (model_artifacts/) ==")
    for manifest_path in sorted(ROOT.glob("model_artifacts/*/*/manifest.json")):
        manifest = json.loads(manifest_path.read_text())
        metrics = manifest["metrics"]
        print(
            f"{manifest['model_name']} {manifest['model_version']}: "
            f"ROC AUC {metrics['roc_auc']:.4f}, accuracy {metrics['accuracy']:.4f}, "
            f"log loss {metrics['log_loss']:.4f}, Brier {metrics['brier_score']:.4f}"
        )
        print(f"  {gate.describe(manifest)}")
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


def main() -> None:
    show_models()
    show_local_serving()
    show_cdk_synth()


if __name__ == "__main__":
    main()
