"""One aggregation of benchmark records: paired means, bootstrap intervals of means and changes, unscorable counts.

Every report and the variant study read results through :func:`aggregate`: the :class:`~attrdist.bench.records.Score`
records, and the :class:`~attrdist.bench.records.MapCheck` of every map. A map is *unscorable* when the benchmark
recorded a reason it could not be scored (all zero, constant or non-finite, :func:`~attrdist.metrics.checks.unscorable`)
or its value is not finite; unscorable maps are counted, never averaged.

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
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from ..metrics import METRICS
from .records import MapCheck, Score

__all__ = ["Aggregate", "Cell", "aggregate", "change", "is_count", "relative"]

#: An (item, unit) pair: the map of one unit of one item.
Pair = tuple[str, str]


def is_count(metric: str) -> bool:
    """Whether a metric is a count of maps (``no_positive``): reported as ``n/N``, never averaged."""
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


#: A cell without any pair to average.
EMPTY = Cell(math.nan, math.nan, math.nan, (math.nan, math.nan), 0, 0)


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
        items: Number of items with at least one record.
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


def change(mean: float, base: float, metric: str) -> float:
    """``mean`` against ``base`` as the metric reads its changes: percent of ``|base|``, or the difference.

    Example:
        >>> change(0.6, 0.5, "region_attribution"), change(0.1, 0.3, "spearman")
        (19.999999999999996, -0.19999999999999998)
    """
    return float(_change(mean, base, relative(metric)))


def _interval(samples: np.ndarray, level: float) -> tuple[float, float]:
    finite = samples[np.isfinite(samples)]
    tail = (1 - level) / 2 * 100
    return (float(np.percentile(finite, tail)), float(np.percentile(finite, 100 - tail))) if finite.size else (
        math.nan, math.nan)


class _Collected:
    """The records sorted into what :func:`aggregate` averages and what it counts."""

    def __init__(self, scores: Iterable[Score], maps: Iterable[MapCheck]) -> None:
        self.methods: list[str] = []
        self.variants: list[str] = ["vanilla"]
        self.metrics: list[str] = []
        self.items: dict[str, int] = {}
        self.values: dict[tuple[str, str, str], dict[Pair, float]] = defaultdict(dict)
        self.dead: set[tuple[str, str, str, str]] = set()
        self.unscorable: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])
        self.counts: dict[tuple[str, str, str], list[int]] = defaultdict(lambda: [0, 0])
        for m in maps:
            self._see(m.item, m.method, m.variant)
            tally = self.unscorable[(m.method, m.variant)]
            tally[0] += not m.scorable
            tally[1] += 1
            if not m.scorable:
                self.dead.add((m.item, m.unit, m.method, m.variant))
        for s in scores:
            self._see(s.item, s.method, s.variant)
            if is_count(s.metric):
                c = self.counts[(s.method, s.variant, s.metric)]
                c[0] += int(s.value > 0)
                c[1] += 1
                continue
            if s.metric not in self.metrics:
                self.metrics.append(s.metric)
            values = self.values[(s.method, s.variant, s.metric)]  # a cell even if no value is finite
            if math.isfinite(s.value):
                values[(s.item, s.unit)] = float(s.value)

    def _see(self, item: str, method: str, variant: str) -> None:
        self.items.setdefault(item, len(self.items))
        for names, name in ((self.methods, method), (self.variants, variant)):
            if name not in names:
                names.append(name)

    def scorable(self, method: str, variant: str, metric: str) -> dict[Pair, float]:
        """The values of the maps of (method, variant) that could be scored."""
        return {k: v for k, v in self.values.get((method, variant, metric), {}).items()
                if (*k, method, variant) not in self.dead}


def _weights(n_items: int, bootstrap: int, seed: int) -> np.ndarray:
    """``[bootstrap, items]``: how often each item is drawn in each resample."""
    if not bootstrap or not n_items:
        return np.zeros((0, n_items))
    rng = np.random.default_rng(seed)
    return np.stack([np.bincount(rng.integers(0, n_items, n_items), minlength=n_items)
                     for _ in range(bootstrap)]).astype(float)


def _cell(c: _Collected, key: tuple[str, str, str], weights: np.ndarray, level: float) -> Cell:
    """One cell: the paired means, the change and their bootstrap intervals."""
    method, variant, metric = key
    own = c.scorable(method, variant, metric)
    vanilla = variant == "vanilla"
    base_vals = own if vanilla else c.scorable(method, "vanilla", metric)
    pairs = sorted(own.keys() & base_vals.keys())
    if not pairs:
        return EMPTY
    idx = np.array([c.items[i] for i, _ in pairs])
    a = np.array([own[k] for k in pairs])
    b = np.array([base_vals[k] for k in pairs])
    rel = relative(metric)
    ci = mean_ci = (math.nan, math.nan)
    if len(weights):
        per_item = np.zeros((3, len(c.items)))
        np.add.at(per_item[0], idx, a)
        np.add.at(per_item[1], idx, b)
        np.add.at(per_item[2], idx, 1.0)
        with np.errstate(invalid="ignore", divide="ignore"):
            sums = weights @ per_item.T  # [bootstrap, 3]
            mean_ci = _interval(sums[:, 0] / sums[:, 2], level)
            if not vanilla:
                ci = _interval(np.asarray(_change(sums[:, 0] / sums[:, 2], sums[:, 1] / sums[:, 2], rel)), level)
    return Cell(float(a.mean()), float(b.mean()), float(_change(a.mean(), b.mean(), rel)), ci, len(pairs),
                len(set(idx.tolist())), mean_ci)


def aggregate(scores: Iterable[Score], maps: Iterable[MapCheck] = (), *, bootstrap: int = 2000, seed: int = 0,
              level: float = 0.95) -> Aggregate:
    """Paired means, bootstrap intervals (of each mean and of each change) and unscorable counts of records.

    Args:
        scores: The scores (a store's, or any subset).
        maps: The checks of the maps those scores come from: the unscorable ones are counted and never averaged.
        bootstrap: Resamples of the intervals (0: no intervals).
        seed: Seed of the resampling.
        level: Coverage of the intervals (0.95; the variant study widens it for its number of comparisons).

    Returns:
        The :class:`Aggregate`.

    Example:
        >>> scores = [Score("a", "u", "m", "vanilla", "region_attribution", 0.5),
        ...           Score("a", "u", "m", "var", "region_attribution", 0.6),
        ...           Score("b", "u", "m", "vanilla", "region_attribution", 0.4)]
        >>> maps = [MapCheck("b", "u", "m", "var", "all-zero map")]
        >>> agg = aggregate(scores, maps, bootstrap=0)
        >>> cell = agg.cells[("m", "var", "region_attribution")]
        >>> round(cell.change, 6), cell.n, agg.unscorable[("m", "var")]  # only item a is paired
        (20.0, 1, (1, 1))
    """
    c = _Collected(scores, maps)
    weights = _weights(len(c.items), bootstrap, seed)
    cells = {key: _cell(c, key, weights, level) for key in c.values}
    return Aggregate(c.methods, c.variants, c.metrics, cells, {k: (n[0], n[1]) for k, n in c.unscorable.items()},
                     {k: (n[0], n[1]) for k, n in c.counts.items()}, len(c.items))
