"""Reference histograms and the population stability index (PSI): numpy only.

Training writes each feature's and the prediction's reference histogram into the
manifest, and the drift monitor, the drift tool and the canary analysis read it back and
bin what they observe with it, so a reference is read with exactly the binning that wrote
it.

Population stability index (PSI)
    ``sum((a - e) * ln(a / e))`` over the reference's bins, ``e`` the reference proportion
    and ``a`` the observed one. Numbers: bin edges are the reference's deciles, taken
    as observed values (repeated edges of discrete data collapse into one bin); a bin
    holds its lower edge, and values below the first or above the last inner edge fall
    into the outer bins. Categories: one bin per category
    seen in the reference (or, for a categorical feature or a class label, per allowed
    value, strings and integers as requests send them), plus one bin for categories it
    never saw (reference share 0).
    Missing values: a nullable feature's histogram (``missing``) has one more bin, last,
    for null (NaN) values, so a change in how often a feature is missing counts in its PSI
    like any other bin; values a histogram never saw (an unlisted category passed on to the
    model) fall into the categories' unseen bin.
    An empty bin would make the logarithm infinite, so both proportions are floored at
    ``PSI_FLOOR`` (1e-4) first. Each term is >= 0 (``a - e`` and ``ln(a / e)`` share their
    sign), so PSI >= 0, and it is 0 only when every bin's shares agree.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, cast

import numpy as np
from numpy.typing import ArrayLike, NDArray

from serving.stats import finite_array

PSI_FLOOR = 1e-4
DEFAULT_BINS = 10
# Integer features with at most this many distinct reference values are categories: their
# quantile edges would collapse, and a new code (a fifth contract type) is drift to show.
MAX_CATEGORIES = 20
PSI_WATCH = 0.1
PSI_ALARM = 0.25

Kind = Literal["numeric", "categorical"]
Category = str | float
Verdict = Literal["stable", "watch", "drift"]


@dataclass(frozen=True)
class Histogram:
    """A reference distribution: bins and the reference's share in each.

    numeric: ``edges`` are the quantile edges, first and last the reference's min and
    max (informational: values outside them fall into the outer bins).
    categorical: ``categories`` in order; ``proportions`` has one more entry, the share
    of categories the reference never saw (0 for the reference itself).
    missing: ``proportions`` ends with one more entry, the share of missing values (None
    or NaN); without it a missing value is refused (``ValueError``).
    """

    kind: Kind
    proportions: tuple[float, ...]
    count: int
    edges: tuple[float, ...] = ()
    # Numbers (integer codes, as the first references hold) or the values a categorical
    # feature or a class label takes in requests and answers (strings and integers).
    categories: tuple[Category, ...] = ()
    missing: bool = False

    def bin_index(self, values: ArrayLike | Sequence[Category | None]) -> NDArray[np.int64]:
        if self.missing:
            absent = missing_mask(values)
            if absent.any():
                index = np.full(absent.shape, len(self.proportions) - 1, dtype=np.int64)
                items = np.asarray(values, dtype=object)[~absent]
                present = items.astype(np.float64) if self.kind == "numeric" else items.tolist()
                index[~absent] = self._present_index(present)
                return index
        return self._present_index(values)

    def _present_index(self, values: ArrayLike | Sequence[Category | None]) -> NDArray[np.int64]:
        if self.kind == "numeric":
            x = finite_array(cast(ArrayLike, values), "values")
            # side="right": a value equal to an edge belongs to the bin above it, as the
            # reference's own values did when the proportions were counted.
            return np.searchsorted(np.asarray(self.edges[1:-1]), x, side="right").astype(np.int64)
        unseen = len(self.categories)
        if isinstance(values, np.ndarray) and values.dtype.kind in "iuf":
            numbers = [c for c in self.categories if not isinstance(c, str)]
            return self._number_index(finite_array(values, "values"), numbers, unseen)
        lookup = {category_key(category): index for index, category in enumerate(self.categories)}
        items: list[Any] = (
            values.tolist() if isinstance(values, np.ndarray) else list(values)  # type: ignore[arg-type]
        )
        if not all(_is_category(v) for v in items):
            raise ValueError("values must be finite numbers or strings")
        return np.array([lookup.get(category_key(v), unseen) for v in items], dtype=np.int64)

    def _number_index(
        self, x: NDArray[np.float64], numbers: Sequence[Category], unseen: int
    ) -> NDArray[np.int64]:
        """``bin_index`` of numbers, vectorised: the same bins as the lookup by key."""
        if not numbers:
            return np.full(x.shape, unseen, dtype=np.int64)
        keys = np.asarray([float(c) for c in numbers])
        positions = np.asarray(
            [i for i, c in enumerate(self.categories) if not isinstance(c, str)], dtype=np.int64
        )
        order = np.argsort(keys)
        found = np.clip(np.searchsorted(keys[order], x), 0, keys.size - 1)
        hit = keys[order][found] == x
        return np.where(hit, positions[order][found], unseen).astype(np.int64)

    def proportions_of(self, values: ArrayLike) -> NDArray[np.float64]:
        """The share of ``values`` in each of this histogram's bins."""
        index = self.bin_index(values)
        if index.size == 0:
            raise ValueError("no values to compare with the reference")
        counts = np.bincount(index, minlength=len(self.proportions))
        return counts.astype(np.float64) / index.size

    def psi(self, values: ArrayLike, floor: float = PSI_FLOOR) -> float:
        return psi(self.proportions, self.proportions_of(values), floor=floor)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind, "count": self.count}
        if self.kind == "numeric":
            out["edges"] = list(self.edges)
        else:
            out["categories"] = list(self.categories)
        if self.missing:
            out["missing"] = True  # only when set: references without it stay as they were
        out["proportions"] = list(self.proportions)
        return out

    @classmethod
    def from_json(cls, data: object, where: str = "histogram") -> Histogram:
        """Read ``to_json``'s output back; ``ValueError`` names ``where`` and the bad field."""
        if not isinstance(data, Mapping):
            raise ValueError(f"{where} must be an object, got {type(data).__name__}")
        kind = data.get("kind")
        if kind not in ("numeric", "categorical"):
            raise ValueError(f"{where}.kind is {kind!r}: expected 'numeric' or 'categorical'")
        proportions = _number_list(data.get("proportions"), f"{where}.proportions")
        count = data.get("count")
        if not isinstance(count, int) or isinstance(count, bool) or count < 1:
            raise ValueError(f"{where}.count must be a positive integer, got {count!r}")
        if any(p < 0 for p in proportions) or not math.isclose(sum(proportions), 1.0, abs_tol=1e-6):
            raise ValueError(f"{where}.proportions must be >= 0 and sum to 1, got {proportions}")
        missing = data.get("missing", False)
        if not isinstance(missing, bool):
            raise ValueError(f"{where}.missing must be true or false, got {missing!r}")
        # The bins' proportions, without the missing values' share.
        binned = len(proportions) - missing
        if kind == "numeric":
            edges = _number_list(data.get("edges"), f"{where}.edges")
            if len(edges) != binned + 1 or any(b <= a for a, b in itertools.pairwise(edges[1:-1])):
                raise ValueError(
                    f"{where}.edges must be {binned + 1} increasing numbers "
                    f"(one more than the bins' proportions), got {edges}"
                )
            return cls("numeric", tuple(proportions), count, edges=tuple(edges), missing=missing)
        categories = _category_list(data.get("categories"), f"{where}.categories")
        keys = {category_key(c) for c in categories}
        if len(categories) + 1 != binned or len(keys) != len(categories):
            raise ValueError(
                f"{where}: {len(categories)} distinct categories need "
                f"{len(categories) + 1 + missing} proportions (then one for unseen ones"
                f"{', one for missing values' if missing else ''}), got {len(proportions)}"
            )
        return cls(
            "categorical", tuple(proportions), count, categories=tuple(categories), missing=missing
        )


def numeric_histogram(
    values: ArrayLike, bins: int = DEFAULT_BINS, *, missing: bool = False
) -> Histogram:
    """Quantile bins of ``values`` (deciles by default); tied quantiles collapse.
    ``missing``: NaN values are counted in a last bin of their own."""
    if bins < 1:
        raise ValueError(f"bins must be a positive integer, got {bins}")
    if missing:
        return _with_missing(np.asarray(values, dtype=np.float64).ravel(), numeric_histogram, bins)
    x = finite_array(values, "values")
    if x.size == 0:
        raise ValueError("cannot build a reference histogram from no values")
    # Edges are observed values (inverted CDF, not interpolated), and a bin [e_i, e_i+1)
    # holds its own lower edge: no reference bin is empty by construction.
    quantiles = np.quantile(x, np.linspace(0.0, 1.0, bins + 1), method="inverted_cdf")
    inner = np.unique(quantiles[1:-1])
    inner = inner[inner > x.min()]
    edges = (float(x.min()), *(float(e) for e in inner), float(x.max()))
    counts = np.bincount(np.searchsorted(inner, x, side="right"), minlength=inner.size + 1)
    shares = tuple(float(c) / x.size for c in counts)
    return Histogram("numeric", shares, int(x.size), edges=edges)


def value_histogram(
    values: Sequence[Category | None], allowed: Sequence[Category], *, missing: bool = False
) -> Histogram:
    """One bin per allowed value, in the given order (a value never seen in ``values``
    keeps its bin at share 0), plus a last bin for values not allowed. Strings and numbers
    are different values: the string "1" is not the integer 1. ``missing``: None values
    are counted in a bin of their own, after those."""
    if not allowed:
        raise ValueError("a value histogram needs at least one allowed value")
    if missing:
        return _with_missing(values, value_histogram, allowed)
    probe = Histogram("categorical", (1.0, *([0.0] * len(allowed))), 1, categories=tuple(allowed))
    index = probe.bin_index(values)
    if index.size == 0:
        raise ValueError("cannot build a reference histogram from no values")
    counts = np.bincount(index, minlength=len(allowed) + 1)
    shares = tuple(float(c) / index.size for c in counts)
    return Histogram("categorical", shares, int(index.size), categories=tuple(allowed))


def categorical_histogram(values: ArrayLike, *, missing: bool = False) -> Histogram:
    """One bin per distinct value (sorted), plus a last bin for values never seen
    (``missing``: and one for NaN values)."""
    if missing:
        return _with_missing(np.asarray(values, dtype=np.float64).ravel(), categorical_histogram)
    x = finite_array(values, "values")
    if x.size == 0:
        raise ValueError("cannot build a reference histogram from no values")
    categories, counts = np.unique(x, return_counts=True)
    shares = (*(float(c) / x.size for c in counts), 0.0)
    return Histogram(
        "categorical", shares, int(x.size), categories=tuple(float(c) for c in categories)
    )


def reference_histogram(
    values: ArrayLike,
    *,
    integer: bool,
    bins: int = DEFAULT_BINS,
    kind: Kind | None = None,
    missing: bool = False,
) -> Histogram:
    """Categories for integer data with few distinct values, quantile bins otherwise
    (``missing``: NaN values in a last bin of their own)."""
    x = np.asarray(values, dtype=np.float64).ravel() if missing else finite_array(values, "values")
    if kind is None:
        few = np.unique(x[~np.isnan(x)]).size <= MAX_CATEGORIES
        kind = "categorical" if integer and few else "numeric"
    if kind == "categorical":
        return categorical_histogram(x, missing=missing)
    return numeric_histogram(x, bins, missing=missing)


def missing_mask(values: ArrayLike | Sequence[Any]) -> NDArray[np.bool_]:
    """Which of ``values`` are missing: None, or a float NaN."""
    if isinstance(values, np.ndarray) and values.dtype.kind == "f":
        return np.isnan(values).ravel()
    items = values.tolist() if isinstance(values, np.ndarray) else list(values)  # type: ignore[arg-type]
    return np.fromiter(
        (v is None or (isinstance(v, float) and math.isnan(v)) for v in items),
        dtype=bool,
        count=len(items),
    )


def _with_missing(values: Any, build: Any, *args: Any) -> Histogram:
    """``build``'s histogram of the present values, its shares scaled to their part of all
    values, with the missing values' share appended as a last bin."""
    absent = missing_mask(values)
    if absent.size == 0:
        raise ValueError("cannot build a reference histogram from no values")
    present = [v for v, gone in zip(list(values), absent.tolist(), strict=True) if not gone]
    share = float(absent.mean())
    if present:
        inner = build(np.asarray(present) if isinstance(values, np.ndarray) else present, *args)
        scaled = tuple(p * (1.0 - share) for p in inner.proportions)
    else:
        # Every reference value missing: bins of share 0 (a numeric one over no range).
        inner = (
            build([0.0], *args) if isinstance(values, np.ndarray) else build([args[0][0]], *args)
        )
        scaled = tuple(0.0 for _ in inner.proportions)
    return Histogram(
        inner.kind,
        (*scaled, share),
        int(absent.size),
        edges=inner.edges,
        categories=inner.categories,
        missing=True,
    )


def psi(expected: ArrayLike, actual: ArrayLike, *, floor: float = PSI_FLOOR) -> float:
    """Population stability index of two proportion vectors over the same bins."""
    e = np.asarray(expected, dtype=np.float64)
    a = np.asarray(actual, dtype=np.float64)
    if e.shape != a.shape or e.ndim != 1 or e.size == 0:
        raise ValueError(f"proportions must be two vectors of one length, got {e.shape}, {a.shape}")
    if not floor > 0:
        raise ValueError(f"floor must be > 0, got {floor}")
    e, a = np.maximum(e, floor), np.maximum(a, floor)
    return float(np.sum((a - e) * np.log(a / e)))


def psi_of_samples(
    reference: ArrayLike, actual: ArrayLike, *, bins: int = DEFAULT_BINS, kind: Kind = "numeric"
) -> float:
    """PSI of ``actual`` against bins taken from ``reference``."""
    histogram = (
        numeric_histogram(reference, bins)
        if kind == "numeric"
        else categorical_histogram(reference)
    )
    return histogram.psi(actual)


def psi_verdict(value: float, *, watch: float = PSI_WATCH, alarm: float = PSI_ALARM) -> Verdict:
    """stable below ``watch``, watch from ``watch`` up to ``alarm``, drift above ``alarm``."""
    check_thresholds(watch, alarm)
    if value > alarm:
        return "drift"
    return "watch" if value >= watch else "stable"


def check_thresholds(watch: float, alarm: float) -> None:
    if not (math.isfinite(watch) and math.isfinite(alarm) and 0 < watch <= alarm):
        raise ValueError(
            f"PSI thresholds must satisfy 0 < watch <= alarm, got watch={watch}, alarm={alarm}"
        )


def category_key(value: Category) -> tuple[str, str | float]:
    """Strings and numbers never match each other; 1 and 1.0 are one number."""
    return ("str", value) if isinstance(value, str) else ("num", float(value))


def _is_category(value: object) -> bool:
    if isinstance(value, str):
        return True
    numeric = isinstance(value, int | float | np.integer | np.floating)
    return numeric and not isinstance(value, bool) and math.isfinite(value)  # type: ignore[arg-type]


def _category_list(value: object, where: str) -> list[Category]:
    if not isinstance(value, list) or not all(_is_category(v) for v in value):
        raise ValueError(f"{where} must be a list of finite numbers or strings, got {value!r}")
    return [v if isinstance(v, str) else float(v) for v in value]


def _number_list(value: object, where: str) -> list[float]:
    if not isinstance(value, list) or not all(
        isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) for v in value
    ):
        raise ValueError(f"{where} must be a list of finite numbers, got {value!r}")
    return [float(v) for v in value]
