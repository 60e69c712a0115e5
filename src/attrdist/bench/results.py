"""One aggregation of benchmark rows: paired means, bootstrap intervals of means and changes, unscorable counts.

Every report and the variant study read results through :func:`aggregate`. A result row is a
:class:`~attrdist.bench.store.Row` ``(item, unit, method, variant, metric, value)``. A map is *unscorable* when
the benchmark recorded it as such
(a ``zeroed`` row with value 1: all zero, constant or non-finite, :func:`~attrdist.metrics.checks.unscorable`)
or its value is missing or not finite; unscorable maps are counted, never averaged.

A variant is compared with vanilla on the same maps only: its mean, vanilla's mean and the change are taken over
the (item, unit) pairs where both maps could be scored (the *paired* mean), so that a variant which zeroes the
hard maps cannot look better by leaving them out. Vanilla's own column is its mean over all its scorable maps.
The change is relative (percent) or a difference, as the metric declares (:attr:`Metric.relative`), and its
95% interval is a percentile bootstrap over items (images or grids), resampling the same items for both sides;
the interval of each mean comes from the same resampled items.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from ..metrics import METRICS
from .store import Row

__all__ = ["UNSCORABLE", "Aggregate", "Cell", "Row", "aggregate", "is_count", "relative"]

#: The count metric under which every benchmark records whether a map could be scored (1) or not (0).
UNSCORABLE = "zeroed"


def is_count(metric: str) -> bool:
    """Whether a metric is a count of maps (``zeroed``, ``no_positive``): reported as ``n/N``, never averaged."""
    return metric in METRICS and METRICS.get(metric).task == "count"


def relative(metric: str) -> bool:
    """Whether changes of a metric read in percent (else as differences: correlations live around 0)."""
    return METRICS.get(metric).relative if metric in METRICS else True


@dataclass(frozen=True)
class Cell:
    """One (method, variant, metric) against vanilla.

    Attributes:
        mean: The variant's mean over the pairs (vanilla: over all its scorable maps).
        base: Vanilla's mean over the same pairs.
        change: ``mean`` against ``base``: percent for relative metrics, else the difference.
        ci: Percentile-bootstrap interval of ``change`` (95% unless asked otherwise; nan without pairs or resamples).
        n: Maps averaged (pairs).
        items: Items (images, grids) they come from.
        mean_ci: Percentile-bootstrap interval of ``mean``, over the same resampled items as ``ci`` (nan without
            maps or resamples).
    """

    mean: float
    base: float
    change: float
    ci: tuple[float, float]
    n: int
    items: int
    mean_ci: tuple[float, float] = (math.nan, math.nan)


@dataclass
class Aggregate:
    """What :func:`aggregate` returns.

    Attributes:
        methods: Methods, in order of appearance.
        variants: ``"vanilla"`` first, then the variants in order of appearance.
        metrics: Averaged metrics (count metrics excluded), in order of appearance.
        cells: ``(method, variant, metric) -> Cell``.
        unscorable: ``(method, variant) -> (maps that could not be scored, maps)``.
        counts: ``(method, variant, count metric) -> (maps counted, maps)`` for every count metric.
        items: Number of items with at least one row.
    """

    methods: list[str]
    variants: list[str]
    metrics: list[str]
    cells: dict[tuple[str, str, str], Cell]
    unscorable: dict[tuple[str, str], tuple[int, int]]
    counts: dict[tuple[str, str, str], tuple[int, int]]
    items: int


def _change(mean: np.ndarray | float, base: np.ndarray | float, rel: bool) -> np.ndarray | float:
    with np.errstate(invalid="ignore", divide="ignore"):
        if not rel:
            return np.subtract(mean, base)
        return np.where(np.asarray(base) != 0, (np.asarray(mean) - base) / np.abs(base) * 100, np.nan)


def _interval(samples: np.ndarray, level: float) -> tuple[float, float]:
    finite = samples[np.isfinite(samples)]
    tail = (1 - level) / 2 * 100
    return (float(np.percentile(finite, tail)), float(np.percentile(finite, 100 - tail))) if finite.size else (
        math.nan, math.nan)


def aggregate(rows: Iterable[Row | Sequence], *, bootstrap: int = 2000, seed: int = 0,
              level: float = 0.95) -> Aggregate:
    """Paired means, bootstrap intervals (of each mean and of each change) and unscorable counts of result rows.

    Args:
        rows: ``(item, unit, method, variant, metric, value)`` tuples (a store's rows, or any subset).
        bootstrap: Resamples of the intervals (0: no intervals).
        seed: Seed of the resampling.
        level: Coverage of the intervals (0.95; the variant study widens it for its number of comparisons).

    Returns:
        The :class:`Aggregate`.

    Example:
        >>> rows = [("a", "u", "m", "vanilla", "region_attribution", 0.5), ("a", "u", "m", "var", "region_attribution",
        ...          0.6), ("b", "u", "m", "vanilla", "region_attribution", 0.4), ("b", "u", "m", "var", "zeroed", 1)]
        >>> cell = aggregate(rows, bootstrap=0).cells[("m", "var", "region_attribution")]
        >>> round(cell.change, 6), cell.n  # only item a is paired: b's VAR map could not be scored
        (20.0, 1)
    """
    methods: list[str] = []
    variants: list[str] = ["vanilla"]
    metrics: list[str] = []
    values: dict[tuple[str, str, str], dict[tuple[str, str], float]] = defaultdict(dict)
    dead: set[tuple[str, str, str, str]] = set()
    count_rows: dict[tuple[str, str, str], list[int]] = defaultdict(lambda: [0, 0])
    items: dict[str, int] = {}
    for item, unit, method, variant, metric, value in rows:
        items.setdefault(item, len(items))
        for lst, v in ((methods, method), (variants, variant)):
            if v not in lst:
                lst.append(v)
        if is_count(metric):
            c = count_rows[(method, variant, metric)]
            c[0] += int(value is not None and value > 0)
            c[1] += 1
            if metric == UNSCORABLE and value is not None and value > 0:
                dead.add((item, unit, method, variant))
            continue
        if metric not in metrics:
            metrics.append(metric)
        cell_values = values[(method, variant, metric)]
        if value is not None and math.isfinite(value):
            cell_values[(item, unit)] = float(value)
    rng = np.random.default_rng(seed)
    weights = np.stack([np.bincount(rng.integers(0, len(items), len(items)), minlength=len(items))
                        for _ in range(bootstrap)]).astype(float) if bootstrap and items else np.zeros((0, len(items)))
    cells: dict[tuple[str, str, str], Cell] = {}
    for (method, variant, metric), vals in values.items():
        own = {k: v for k, v in vals.items() if (*k, method, variant) not in dead}
        base_vals = {k: v for k, v in values.get((method, "vanilla", metric), {}).items()
                     if (*k, method, "vanilla") not in dead}
        pairs = sorted(own.keys() & base_vals.keys()) if variant != "vanilla" else sorted(own)
        if not pairs:
            cells[(method, variant, metric)] = Cell(math.nan, math.nan, math.nan, (math.nan, math.nan), 0, 0)
            continue
        idx = np.array([items[i] for i, _ in pairs])
        a = np.array([own[k] for k in pairs])
        b = np.array([base_vals[k] for k in pairs]) if variant != "vanilla" else a
        rel = relative(metric)
        change = float(_change(a.mean(), b.mean(), rel))
        ci: tuple[float, float] = (math.nan, math.nan)
        mean_ci: tuple[float, float] = (math.nan, math.nan)
        if len(weights):
            per_item = np.zeros((3, len(items)))
            np.add.at(per_item[0], idx, a)
            np.add.at(per_item[1], idx, b)
            np.add.at(per_item[2], idx, 1.0)
            with np.errstate(invalid="ignore", divide="ignore"):
                sums = weights @ per_item.T  # [bootstrap, 3]
                mean_ci = _interval(sums[:, 0] / sums[:, 2], level)
                if variant != "vanilla":
                    ci = _interval(np.asarray(_change(sums[:, 0] / sums[:, 2], sums[:, 1] / sums[:, 2], rel)), level)
        cells[(method, variant, metric)] = Cell(float(a.mean()), float(b.mean()), change, ci, len(pairs),
                                                len(set(idx.tolist())), mean_ci)
    counts = {k: (c[0], c[1]) for k, c in count_rows.items()}
    unscorable = {(m, v): n for (m, v, metric), n in counts.items() if metric == UNSCORABLE}
    return Aggregate(methods, variants, metrics, cells, unscorable, counts, len(items))
