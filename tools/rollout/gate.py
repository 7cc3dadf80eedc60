"""The traffic gate, offline: ``rollout start`` runs it on the local artifacts before it
writes cdk.json, so most refusals come before any deploy.

The checks are the deployed gate's own (``serving.gate_decision.evaluate``); only where
the answers come from differs: here the candidate artifact and the stable model's artifact
are loaded with the app's loader for the configured runtime and asked both models' golden
rows.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from serving import artifacts, gate_decision, golden_sets
from serving.runtimes import ModelRuntime
from stacks.settings import QualityGateSettings
from training import golden


class GateRefusedError(Exception):
    """The candidate failed the gate; the message names the metric, value and tolerance."""


def answers(version_dir: Path, runtime: ModelRuntime, rows: golden.GoldenSet) -> Any:
    """The local artifact's answers on ``rows``, as the deployed handler would give them."""
    manifest = artifacts.load_manifest(version_dir)
    entry = manifest["artifacts"][runtime.value]
    outputs = golden.predict(runtime.value, (version_dir / entry["file"]).read_bytes(), rows.X)
    if rows.task == "regression":
        return golden_sets.Answers(outputs.tolist(), None)
    labels = golden.labels_of(outputs, rows.task, rows.classes)
    return golden_sets.Answers(outputs.tolist(), labels.tolist())


def check(
    artifacts_root: Path,
    model_name: str,
    candidate: str,
    stable: str | None,
    runtime: ModelRuntime,
    tolerances: QualityGateSettings,
) -> list[str]:
    """The gate's report lines; ``GateRefusedError`` when the candidate fails.

    The artifacts' checksums are the caller's to check first (``steps.check_model``): the
    bytes loaded here must be the ones the manifest pins.
    """
    candidate_dir = artifacts_root / model_name / candidate
    golden_set, document = _golden(candidate_dir, candidate)
    scored = []
    try:
        candidate_answers = answers(candidate_dir, runtime, golden_set)
        if stable is not None and stable != candidate:
            stable_dir = artifacts_root / model_name / stable
            stable_set, stable_document = _golden(stable_dir, stable)
            golden_sets.same_kind(
                golden_sets.kind_of(document), golden_sets.kind_of(stable_document)
            )
            for name, rows in (
                (gate_decision.CANDIDATE_ROWS, golden_set),
                (gate_decision.STABLE_ROWS, stable_set),
            ):
                scored.append(
                    gate_decision.Scored(
                        f"{name} ({candidate if rows is golden_set else stable})",
                        None if rows.y is None else rows.y.tolist(),
                        # The candidate's answers on its own rows: identity's, once.
                        candidate_answers
                        if rows is golden_set
                        else answers(candidate_dir, runtime, rows),
                        answers(stable_dir, runtime, rows),
                        # The rows the other version (not the one sampling them) trained on.
                        golden_sets.seen_by(
                            stable_document if rows is golden_set else document,
                            document if rows is golden_set else stable_document,
                        ),
                    )
                )
        verdict = gate_decision.evaluate(
            document,
            runtime.value,
            candidate_answers,
            scored,
            gate_decision.Tolerances(
                tolerances.max_log_loss_increase,
                tolerances.max_auc_decrease,
                tolerances.max_brier_increase,
                tolerances.max_rmse_increase_fraction,
            ),
            allow_unlabelled=tolerances.allow_unlabelled_golden,
        )
    except golden_sets.GateError as error:
        raise GateRefusedError(f"--version {candidate!r}: {error}") from None
    against = f"against stable {stable}" if scored else "no stable model"
    title = f"gate: {model_name} {candidate} ({runtime.value}), {against}"
    lines = [title, *(f"  {line}" for line in verdict.lines())]
    if not verdict.passed:
        raise GateRefusedError("\n".join(lines))
    return lines


def _golden(version_dir: Path, version: str) -> tuple[golden.GoldenSet, dict[str, Any]]:
    try:
        parsed = golden.read(version_dir)
    except ValueError as error:
        raise GateRefusedError(f"model {version!r}: {error}") from None
    document: dict[str, Any] = json.loads((version_dir / golden.GOLDEN_FILE).read_bytes())
    return parsed, document
