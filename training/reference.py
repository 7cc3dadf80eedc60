"""The two reference versions of the churn model, so that a canary can be shown.

v1 and v2 share the hyperparameters and differ in the synthetic data seed: two honest
retrains of the same model, as a scheduled retraining would produce them.

    python -m training.reference          # builds whichever is missing, verifies the rest

A version present but older than golden sets gets its ``golden.json`` and reference
distributions added from the same data, its model files untouched.
"""

from __future__ import annotations

import sys

from serving import artifacts
from training import golden, versions
from training.train import DEFAULT_OUTPUT, add_quality_records, synthetic_data, train

MODEL = "churn"
REFERENCE_VERSIONS: dict[str, dict[str, int]] = {
    "v1": {"rows": 20000, "seed": 7},
    "v2": {"rows": 20000, "seed": 11},
}


def main() -> int:
    status = 0
    for version, spec in REFERENCE_VERSIONS.items():
        directory = DEFAULT_OUTPUT / MODEL / version
        if versions.recover_set_aside(directory):
            print(f"{directory}: restored the copy an interrupted --force had set aside")
        if directory.exists():
            problems = artifacts.verify_version(directory)
            for problem in problems:
                print(f"error: {problem}", file=sys.stderr)
            status |= bool(problems)
            manifest = artifacts.load_manifest(directory)
            if not problems and golden.ARTIFACT_KEY not in manifest["artifacts"]:
                data = synthetic_data(spec["rows"], spec["seed"])
                add_quality_records(data, directory)
                print(f"{directory}: added {golden.GOLDEN_FILE} and reference distributions")
            print(
                f"{directory.relative_to(DEFAULT_OUTPUT.parent)}: present, checksums "
                f"{'DO NOT match' if problems else 'match'}"
            )
            continue
        print(f"training {MODEL} {version} (synthetic, {spec['rows']} rows, seed {spec['seed']})")
        train(synthetic_data(spec["rows"], spec["seed"]), model_name=MODEL, version=version)
    return status


if __name__ == "__main__":
    sys.exit(main())
