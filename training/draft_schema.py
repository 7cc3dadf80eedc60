"""``python -m training.package --write-schema FILE``: draft the schema of a pipeline
fitted on a DataFrame, from the pipeline itself and the data, for the user to review.

* names and order: ``feature_names_in_``;
* a column an encoder reads: categorical, its values the encoder's ``categories_`` (in
  their order), ``unknown: pass`` where the encoder handles unknown values;
* another text column: categorical over the values in the data;
* a number column: ``integer`` when every value in the data is whole, else ``number``,
  ``min``/``max`` the data's range widened by ``MARGIN`` of it on each side (not below 0
  for a column that never is), rounded outward;
* ``nullable`` where the data has empty cells or an imputer fills the column;
* the task from the estimator (``classes_``: 2 binary, more multiclass; else regression),
  the label the data's one column the model does not read (or ``--label``).

Each feature's ``description`` says where its entry came from. The draft is loaded back
by the schema loader and checked against the pipeline before it is written.
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from serving.schema import NAME_PATTERN, Schema, listing, quote, schema_from_document
from training import frame_checks
from training.schema import YAML_SUFFIXES

# The stated margin around the data's range (a share of max - min, on each side).
MARGIN = 0.1
SUFFIXES = (".json", *YAML_SUFFIXES)
IMPUTERS = ("SimpleImputer", "KNNImputer", "IterativeImputer")


class DraftError(ValueError):
    """The schema cannot be drafted; the message says why."""


def write(
    estimator_file: Path,
    out: Path,
    *,
    data: Path | None,
    label: str | None,
    sha256: str | None,
    read: Callable[[Path, str | None], tuple[Any, dict[str, Any]]],
    log: Callable[[str], Any] | None = None,
) -> Schema:
    """Draft, check and write the schema; nothing is written on a refusal."""
    say = log or (lambda message: print(message, file=sys.stderr))
    if out.suffix.lower() not in SUFFIXES:
        raise DraftError(f"--write-schema {out}: expected a .json, .yaml or .yml file name")
    if out.exists():
        raise DraftError(f"--write-schema {out}: the file exists; remove it or choose another")
    if data is None:
        raise DraftError(
            f"--write-schema {out}: needs --data (the ranges, integer columns and empty "
            "cells come from the data)"
        )
    pipeline, _ = read(estimator_file, sha256)
    document = draft(pipeline, _read(data), label=label, where=str(estimator_file))
    schema = schema_from_document(out, document)
    frame_checks.check_names(pipeline, schema, str(estimator_file))
    frame_checks.check_encoders(pipeline, schema, str(estimator_file))
    if out.suffix.lower() in YAML_SUFFIXES:
        import yaml

        header = (
            f"# Drafted by python -m training.package --write-schema from {estimator_file.name}"
            f" and {data.name}.\n# Ranges: the data's, widened by {MARGIN:.0%} of the range on "
            "each side. Review every entry.\n"
        )
        text = header + yaml.safe_dump(document, sort_keys=False, allow_unicode=True, width=100)
    else:
        text = json.dumps(document, indent=2) + "\n"
    out.write_text(text, encoding="utf-8")
    say(f"wrote the draft schema {out} ({len(schema.features)} features, task {schema.task})")
    say(
        "review before packaging: each min/max (the data's range widened by "
        f"{MARGIN:.0%} of it on each side), the integer/number types, each categorical "
        "feature's values and unknown policy, which features are nullable, the task "
        f"and the label ({schema.label}); then package with --schema {out}"
    )
    return schema


def _read(data: Path) -> Any:
    import pandas as pd

    try:
        return pd.read_csv(data, skipinitialspace=True, encoding="utf-8-sig")
    except Exception as exc:
        raise DraftError(f"{data}: pandas cannot read it ({quote(str(exc), 200)})") from None


def draft(pipeline: Any, frame: Any, *, label: str | None, where: str) -> dict[str, Any]:
    """The schema document for ``pipeline`` over the DataFrame ``frame``."""
    import pandas as pd

    names = getattr(pipeline, "feature_names_in_", None)
    if names is None or not all(isinstance(n, str) for n in names):
        raise DraftError(
            f"{where}: the model was not fitted on a DataFrame (no feature_names_in_): there "
            "are no names to draft from; write the schema by hand"
        )
    names = [str(n) for n in names]
    frame.columns = [str(c).strip() for c in frame.columns]
    bad = [n for n in names if not NAME_PATTERN.fullmatch(n)]
    if bad:
        raise DraftError(
            f"{where}: column(s) {listing([quote(n) for n in bad])} cannot be schema names "
            "(letters, digits and '_', not starting with a digit): rename them and refit"
        )
    missing = [n for n in names if n not in frame.columns]
    if missing:
        raise DraftError(f"{where}: the data has no column(s) {listing(missing)}")
    label = label or _label(frame, names, where)
    if label not in frame.columns:
        raise DraftError(f"--label {label!r}: the data has no such column")
    encoded = {
        column: (found, categories)
        for found in frame_checks.encoders(pipeline)
        for column, categories in zip(found.columns, found.encoder.categories_, strict=True)
    }
    imputed = _imputed_columns(pipeline)
    features = []
    for name in names:
        column = frame[name]
        entry: dict[str, Any] = {"name": name}
        notes = []
        if name in encoded:
            found, categories = encoded[name]
            values = [frame_checks.plain(c) for c in categories if not _missing(c)]
            entry.update(type="categorical", values=values)
            notes.append(f"values: the categories of {found.path}")
            if getattr(found.encoder, "handle_unknown", "error") != "error":
                entry["unknown"] = "pass"
                notes.append("unknown values pass to the encoder, which handles them")
        elif not pd.api.types.is_numeric_dtype(column):
            values = sorted({frame_checks.plain(v) for v in column.dropna()}, key=str)
            entry.update(type="categorical", values=values)
            notes.append("values: those in the data")
        else:
            entry.update(_numeric(column, name, where))
            notes.append(f"min/max: the data's range widened by {MARGIN:.0%} of it on each side")
        if column.isna().any() or name in imputed:
            entry["nullable"] = True
            notes.append(
                "nullable: "
                + ("the data has empty cells" if column.isna().any() else "")
                + (" and " if column.isna().any() and name in imputed else "")
                + (f"an imputer fills it ({imputed[name]})" if name in imputed else "")
            )
        entry["description"] = "Drafted; " + "; ".join(notes) + ". Review."
        features.append(entry)
    return {"task": _task(pipeline), "label": label, "features": features}


def _label(frame: Any, names: list[str], where: str) -> str:
    others = [c for c in frame.columns if c not in names]
    if len(others) != 1:
        raise DraftError(
            f"{where}: the data has {len(others)} columns the model does not read "
            f"({listing([quote(c) for c in others])}): name the label with --label COLUMN"
        )
    return str(others[0])


def _task(pipeline: Any) -> str:
    classes = getattr(pipeline, "classes_", None)
    if classes is None:
        return "regression"
    return "binary" if len(classes) == 2 else "multiclass"


def _numeric(column: Any, name: str, where: str) -> dict[str, Any]:
    values = column.dropna().astype(float)
    if values.empty:
        raise DraftError(f"{where}: column {name!r} has no value in the data to take a range from")
    low, high = float(values.min()), float(values.max())
    span = high - low
    integer = bool((values % 1 == 0).all())
    lower, upper = low - MARGIN * span, high + MARGIN * span
    if low >= 0:
        lower = max(lower, 0.0)
    if integer:
        return {"type": "integer", "min": math.floor(lower), "max": math.ceil(upper)}
    step = 10.0 ** math.floor(math.log10(span / 100)) if span > 0 else 1.0
    return {
        "type": "number",
        "min": _tidy(math.floor(lower / step) * step, step),
        "max": _tidy(math.ceil(upper / step) * step, step),
    }


def _tidy(value: float, step: float) -> float:
    decimals = max(0, -math.floor(math.log10(step)))
    return float(round(value, decimals))


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _imputed_columns(pipeline: Any) -> dict[str, str]:
    """Columns an imputer reads (name -> the imputer's path)."""
    found: dict[str, str] = {}
    for step in frame_checks.column_steps(pipeline):
        if type(step.encoder).__name__ in IMPUTERS:
            for column in step.columns:
                found.setdefault(column, step.path)
    return found
