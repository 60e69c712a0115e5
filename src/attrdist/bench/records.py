"""What a benchmark records: typed records, each in its own table of the run's store, read by name everywhere.

A benchmark returns one :class:`ItemResult` per item (or a :class:`Skip` with the reason the item as a whole is
skipped); the runner writes it in one transaction with the item's completion mark
(:class:`~attrdist.bench.store.ResultStore`). The records:

* :class:`Score`: a metric's value for one scorable map;
* :class:`MapCheck`: every map a benchmark refined, and why it could not be scored (``reason``; ``None``: it
  could). An unscorable map gets no :class:`Score`; reports count it (``n/N``) and leave it out of every mean;
* :class:`Curve` and :class:`CurveSkip`: an insertion curve of one map, or why it could not be computed (PIC's
  rules on the image);
* :class:`UnitAttribute`: a fact about a unit that is not a score (the sanity check's fraction of blocks
  randomised at a depth).

Example:
    >>> s = Score("img1", "cell0", "gradcam", "var", "iou", 0.5)
    >>> s.metric, s.value
    ('iou', 0.5)
    >>> MapCheck("img1", "cell0", "gradcam", "var", "all-zero map").scorable
    False
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import NamedTuple

__all__ = ["FRACTION", "Curve", "CurveSkip", "ItemResult", "MapCheck", "Score", "Skip", "SkippedItem", "UnitAttribute",
           "unit_values"]

#: The sanity check's :class:`UnitAttribute`: the fraction of the model's blocks randomised at a depth (a unit).
FRACTION = "fraction"


class Score(NamedTuple):
    """A metric's value for one map of a unit (a cell, an object, an image, a depth) of an item."""

    item: str
    unit: str
    method: str
    variant: str
    metric: str
    value: float


class MapCheck(NamedTuple):
    """One map a benchmark refined, and why it could not be scored (``reason``; ``None`` where it could)."""

    item: str
    unit: str
    method: str
    variant: str
    reason: str | None = None

    @property
    def scorable(self) -> bool:
        """Whether the map could be scored."""
        return self.reason is None


class Curve(NamedTuple):
    """An insertion curve (``name``: ``aic``, ``sic``) of one map: its values at the thresholds."""

    item: str
    unit: str
    method: str
    variant: str
    name: str
    values: tuple[float, ...]


class CurveSkip(NamedTuple):
    """Why a curve of one map could not be computed (the PIC rules on the image: its prediction, its size)."""

    item: str
    unit: str
    method: str
    variant: str
    name: str
    reason: str


class UnitAttribute(NamedTuple):
    """A fact about a unit that is not a score: the sanity check's ``fraction`` of blocks randomised at a depth."""

    item: str
    unit: str
    name: str
    value: float


def unit_values(attributes: Iterable[UnitAttribute], name: str) -> dict[str, float]:
    """``unit -> value`` of the attributes called ``name`` (the sanity check's :data:`FRACTION` per depth).

    Example:
        >>> unit_values([UnitAttribute("a", "depth003", FRACTION, 0.5)], FRACTION)
        {'depth003': 0.5}
    """
    return {a.unit: a.value for a in attributes if a.name == name}


class SkippedItem(NamedTuple):
    """An item skipped as a whole (no record at all), with the reason."""

    item: str
    reason: str


@dataclass(frozen=True)
class Skip:
    """Returned by an item's computation to skip it, with the reason (stored, never silently dropped)."""

    reason: str


@dataclass
class ItemResult:
    """Everything one item recorded; stored with the item's completion mark in one transaction.

    Attributes:
        scores: Metric values of the scorable maps.
        maps: Every map refined, scorable or not (the denominators of the unscorable counts).
        curves: Insertion curves.
        curve_skips: Curves that could not be computed, with the reason.
        attributes: Facts about units (the sanity check's depth fractions).
        timings: Seconds per stage the benchmark measured (the sanity check: ``depth003``); the store keeps them
            beside the item (:meth:`~attrdist.bench.store.ResultStore.timings`).
    """

    scores: list[Score] = field(default_factory=list)
    maps: list[MapCheck] = field(default_factory=list)
    curves: list[Curve] = field(default_factory=list)
    curve_skips: list[CurveSkip] = field(default_factory=list)
    attributes: list[UnitAttribute] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)

    def extend(self, other: ItemResult) -> None:
        """Add another result's records (and timings) of the same item to this one."""
        self.scores += other.scores
        self.maps += other.maps
        self.curves += other.curves
        self.curve_skips += other.curve_skips
        self.attributes += other.attributes
        self.timings.update(other.timings)
