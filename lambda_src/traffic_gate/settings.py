"""What the traffic gate checks, read from where it is told: the custom resource's
properties or, for the CodeDeploy hook, the function's environment.

Both ways in name the same settings (the golden sets, the runtime, the tolerances, the
batch size), each under its own keys (``KEYS``: a property and an environment variable per
setting); ``read_settings`` reads either into one ``GateSettings``, and names the key of a
value it cannot use.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any

from serving.gate_decision import Tolerances
from serving.golden_sets import GateError

DEFAULT_BATCH_SIZE = 200
# Stacks synthesized before the regression tolerance existed do not pass it.
OPTIONAL_TOLERANCES = ("max_rmse_increase_fraction",)


@dataclass(frozen=True)
class GoldenObject:
    """A golden.json in S3 and the SHA-256 its model's manifest pins."""

    bucket: str
    key: str
    sha256: str


@dataclass(frozen=True)
class GateSettings:
    """One check: the versions asked (qualified ARNs), the golden sets, the tolerances."""

    candidate_function: str
    stable_function: str | None
    golden: GoldenObject
    # The stable model's golden set: quality is also judged on labels the candidate's
    # pipeline did not produce.
    stable_golden: GoldenObject | None
    runtime: str
    tolerances: Tolerances
    batch_size: int = DEFAULT_BATCH_SIZE
    # quality_gate.allow_unlabelled_golden: a golden set without labels passes unchecked.
    allow_unlabelled_golden: bool = False


# Each setting's key: (in the custom resource's properties, in the hook's environment).
KEYS: dict[str, tuple[str, str]] = {
    "golden_bucket": ("GoldenBucket", "GOLDEN_BUCKET"),  # the stable golden set's too
    "golden_key": ("GoldenKey", "GOLDEN_KEY"),
    "golden_sha256": ("GoldenSha256", "GOLDEN_SHA256"),
    "stable_golden_key": ("StableGoldenKey", "STABLE_GOLDEN_KEY"),
    "stable_golden_sha256": ("StableGoldenSha256", "STABLE_GOLDEN_SHA256"),
    "runtime": ("Runtime", "MODEL_RUNTIME"),
    "batch_size": ("BatchSize", "BATCH_SIZE"),
    "max_log_loss_increase": ("MaxLogLossIncrease", "MAX_LOG_LOSS_INCREASE"),
    "max_auc_decrease": ("MaxAucDecrease", "MAX_AUC_DECREASE"),
    "max_brier_increase": ("MaxBrierIncrease", "MAX_BRIER_INCREASE"),
    "max_rmse_increase_fraction": ("MaxRmseIncreaseFraction", "MAX_RMSE_INCREASE_FRACTION"),
    "allow_unlabelled_golden": ("AllowUnlabelledGolden", "ALLOW_UNLABELLED_GOLDEN"),
}
PROPERTIES = {setting: keys[0] for setting, keys in KEYS.items()}
ENVIRONMENT = {setting: keys[1] for setting, keys in KEYS.items()}
TOLERANCES = tuple(field.name for field in fields(Tolerances))


def read_settings(
    raw: Mapping[str, Any],
    keys: Mapping[str, str],
    candidate_function: str,
    stable_function: str | None,
) -> GateSettings:
    """The check of ``candidate_function`` against ``stable_function`` (None: identity
    only) with the rest read from ``raw``, each setting under its key in ``keys``
    (``PROPERTIES`` or ``ENVIRONMENT``)."""
    bucket = keys["golden_bucket"]
    golden = _golden_object(raw, bucket, keys["golden_key"], keys["golden_sha256"])
    stable_golden = None
    if raw.get(keys["stable_golden_key"]):
        stable_golden = _golden_object(
            raw, bucket, keys["stable_golden_key"], keys["stable_golden_sha256"]
        )
    return GateSettings(
        candidate_function=candidate_function,
        stable_function=stable_function,
        golden=golden,
        stable_golden=stable_golden,
        runtime=required(raw, keys["runtime"]),
        tolerances=tolerances(raw, {name: keys[name] for name in TOLERANCES}, OPTIONAL_TOLERANCES),
        batch_size=batch_size(raw.get(keys["batch_size"])),
        allow_unlabelled_golden=flag(raw, keys["allow_unlabelled_golden"]),
    )


def _golden_object(raw: Mapping[str, Any], bucket: str, key: str, sha256: str) -> GoldenObject:
    return GoldenObject(required(raw, bucket), required(raw, key), required(raw, sha256))


def required(raw: Mapping[str, Any], key: str) -> str:
    value = raw.get(key)
    if not isinstance(value, str) or not value:
        raise GateError(f"{key} is missing")
    return value


def tolerances(
    raw: Mapping[str, Any], names: Mapping[str, str], optional: Sequence[str] = ()
) -> Tolerances:
    """``names`` maps each field to its key in ``raw``; the fields in ``optional`` keep
    their default when their key is absent."""
    values = {}
    for attribute, key in names.items():
        text = raw.get(key)
        if text is None and attribute in optional:
            continue
        try:
            value = float(text)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            raise GateError(f"{key}={text!r} is not a number") from None
        if not (math.isfinite(value) and value >= 0):
            raise GateError(f"{key}={text!r} is not allowed: a finite number >= 0")
        values[attribute] = value
    return Tolerances(**values)


def flag(raw: Mapping[str, Any], key: str) -> bool:
    """``"true"`` or ``"false"``; absent (a stack synthesized before the key) is false."""
    text = raw.get(key)
    if text is None or text == "false":
        return False
    if text == "true":
        return True
    raise GateError(f"{key}={text!r} is not allowed: 'true' or 'false'")


def batch_size(text: Any) -> int:
    if text is None:
        return DEFAULT_BATCH_SIZE
    try:
        value = int(text)
    except (TypeError, ValueError):
        raise GateError(f"batch size {text!r} is not an integer") from None
    if value < 1:
        raise GateError(f"batch size {value} is not allowed: at least 1")
    return value
