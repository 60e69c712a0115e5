"""The one rule that ranks VAR variants against vanilla: the variant study's, also behind a report's comparison.

A variant is judged on every (method, metric) change against vanilla, each with its interval (paired over the
maps both could score, :func:`~attrdist.bench.results.aggregate`): a change whose interval lies entirely on the
worse side (by the metric's registered direction) is a *harm*, one entirely on the better side a *benefit*; so is
a benchmark where the variant leaves more than :data:`UNSCORABLE_SHARE` of the maps it refines unscorable beyond
those vanilla cannot score. A variant is *eligible* without harms. Ranking: fewest harms, then most benefits, then
the largest mean relative change of region attribution. The study fixed this rule before its second run
(``docs/presets.md``, "The default VAR").

Example:
    >>> from attrdist.bench.results import Cell
    >>> better = Cell(0.6, 0.5, 20.0, (5.0, 30.0), 10, 10)
    >>> worse = Cell(0.4, 0.5, -20.0, (-30.0, -5.0), 10, 10)
    >>> ranked = rank([judge("a", {("gradcam", "region_attribution"): better}),
    ...                judge("b", {("gradcam", "region_attribution"): worse})])
    >>> [(v.variant, v.eligible, v.benefits) for v in ranked]
    [('a', True, 1), ('b', False, 0)]
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from ..metrics.base import METRICS
from .results import Cell

__all__ = ["UNSCORABLE_SHARE", "Verdict", "judge", "rank"]

#: The most maps a candidate may leave unscorable beyond vanilla's, as a share of the maps of a benchmark.
UNSCORABLE_SHARE = 0.01


@dataclass(frozen=True)
class Verdict:
    """One variant under the rule: eligible or why not, and what ranks it."""

    variant: str
    eligible: bool
    harms: tuple[str, ...]
    benefits: int
    mean_ra_change: float


def _higher_is_better(metric: str) -> bool:
    base = metric.split("@", 1)[0]  # the study's sanity metrics carry their depth: spearman@0.50
    return METRICS.get(base).higher_is_better if base in METRICS else True


def judge(variant: str, changes: Mapping[tuple[str, str], Cell],
          unscorable: Mapping[str, tuple[int, int]] | None = None,
          vanilla_unscorable: Mapping[str, tuple[int, int]] | None = None) -> Verdict:
    """A variant under the rule.

    Args:
        variant: Its name.
        changes: ``(method, metric) -> Cell`` of the variant against vanilla (the interval: ``Cell.ci``).
        unscorable: Per benchmark (or run), ``(maps it could not score, maps it refined)``.
        vanilla_unscorable: The same for vanilla.

    Returns:
        The :class:`Verdict`.
    """
    harms: list[str] = []
    benefits = 0
    for (method, metric), c in changes.items():
        lo, hi = c.ci
        higher = _higher_is_better(metric)
        if higher and hi < 0 or not higher and lo > 0:
            harms.append(f"{method}: {metric} worse than vanilla")
        elif higher and lo > 0 or not higher and hi < 0:
            benefits += 1
    base = vanilla_unscorable or {}
    for bench, (dead, total) in (unscorable or {}).items():
        extra = dead - base.get(bench, (0, 0))[0]
        if total and extra > UNSCORABLE_SHARE * total:
            harms.append(f"{bench}: {extra} of {total} maps unscorable beyond vanilla's")
    ra = [c.change for (_, metric), c in changes.items() if metric == "region_attribution" and math.isfinite(c.change)]
    return Verdict(variant, not harms, tuple(harms), benefits, sum(ra) / len(ra) if ra else math.nan)


def rank(verdicts: Iterable[Verdict]) -> list[Verdict]:
    """Verdicts best first: fewest harms, then most benefits, then the largest mean relative RA change."""
    return sorted(verdicts, key=lambda v: (len(v.harms), -v.benefits,
                                           -(v.mean_ra_change if math.isfinite(v.mean_ra_change) else -math.inf)))
