"""The one reader of run folders of the store's first layout (before every record had its own table).

Layout 1 kept everything in one ``results`` table of ``(item, unit, method, variant, metric, value)`` rows, with
conventions inside them: a ``zeroed`` row (1: the map could not be scored) for every map, the sanity check's depth
as a ``fraction`` row per map, the reason a map or a curve could not be scored in the ``skipped`` table under an
invented item id (``item/method/variant``, ``item/unit/method/variant``, ``item/curve``), and ``NULL`` metric values
for unscorable maps. :class:`LegacyRecords` turns such a database into the records of
:mod:`~attrdist.bench.records`, so that reports and analyses read old and new run folders alike.
"""

from __future__ import annotations

import json
import math
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path

from .records import FRACTION, Curve, CurveSkip, MapCheck, Score, SkippedItem, UnitAttribute

__all__ = ["LegacyRecords"]

#: The reason a layout-1 map was recorded unscorable under when no reason was stored with it (localisation).
NOT_RECORDED = "unscorable (reason not recorded)"


def _split(key: str, done: set[str]) -> tuple[str, list[str]] | None:
    """``(item, parts)`` of a pseudo-item id ``item/part/...`` whose item is a stored one, else ``None``."""
    for i in range(len(key) - 1, 0, -1):
        if key[i] == "/" and key[:i] in done:
            return key[:i], key[i + 1:].split("/")
    return None


@dataclass
class LegacyRecords:
    """The records of a layout-1 database (:meth:`read`)."""

    scores: list[Score] = field(default_factory=list)
    maps: list[MapCheck] = field(default_factory=list)
    curves: list[Curve] = field(default_factory=list)
    curve_skips: list[CurveSkip] = field(default_factory=list)
    attributes: list[UnitAttribute] = field(default_factory=list)
    skipped: list[SkippedItem] = field(default_factory=list)
    done: list[str] = field(default_factory=list)

    @classmethod
    def read(cls, db: sqlite3.Connection, path: Path) -> LegacyRecords:
        """Read a layout-1 database into records.

        Raises:
            ValueError: If a row holds something other than names and numbers.
        """
        out = cls()
        done = {r[0] for r in db.execute("SELECT item FROM done")}
        reasons, part_skips = out._read_skips(db, done)
        attributes: dict[tuple[str, str], float] = {}
        for row in db.execute("SELECT item, unit, method, variant, metric, value FROM results "
                              "ORDER BY item, unit, method, variant, metric"):
            if not all(isinstance(v, str) for v in row[:5]) or not (
                    row[5] is None or isinstance(row[5], int | float) and not isinstance(row[5], bool)):
                raise ValueError(f"{path}: a result row holds {row[5]!r} where a number belongs "
                                 f"(item {str(row[0])[:60]!r}, metric {str(row[4])[:60]!r})")
            item, unit, method, variant, metric, value = row
            if metric == "fraction":
                if value is not None:
                    attributes.setdefault((item, unit), float(value))
            elif metric == "zeroed":
                dead = value is not None and value > 0
                why = reasons.get((item, unit, method, variant)) or reasons.get((item, "", method, variant))
                out.maps.append(MapCheck(item, unit, method, variant, (why or NOT_RECORDED) if dead else None))
            elif value is not None and math.isfinite(value):
                out.scores.append(Score(item, unit, method, variant, metric, float(value)))
        dead = {(m.item, m.unit, m.method, m.variant) for m in out.maps if not m.scorable}
        out.scores = [s for s in out.scores if (s.item, s.unit, s.method, s.variant) not in dead]  # no score: no map
        out.attributes = [UnitAttribute(i, u, FRACTION, v) for (i, u), v in sorted(attributes.items())]
        out.done = sorted(done | {s.item for s in out.skipped})
        for row in db.execute("SELECT item, unit, method, variant, name, data FROM curves "
                              "ORDER BY item, unit, method, variant, name"):
            item, unit, method, variant, name, data = (str(v) for v in row)
            out.curves.append(Curve(item, unit, method, variant, name, tuple(float(v) for v in json.loads(data))))
        out._expand_curve_skips(part_skips)
        return out

    def _read_skips(self, db: sqlite3.Connection, done: set[str]) -> tuple[
            dict[tuple[str, str, str, str], str], list[tuple[str, str, str]]]:
        """Whole-item skips (kept), map reasons by ``(item, unit or "", method, variant)`` and curve skips."""
        reasons: dict[tuple[str, str, str, str], str] = {}
        part_skips: list[tuple[str, str, str]] = []  # (item, curve name, reason)
        for key, reason in db.execute("SELECT item, reason FROM skipped ORDER BY item"):
            split = _split(str(key), done)
            if split is None:
                self.skipped.append(SkippedItem(str(key), str(reason)))
            elif len(split[1]) == 3:  # the sanity check: item/unit/method/variant
                unit, method, variant = split[1]
                reasons[(split[0], unit, method, variant)] = str(reason)
            elif len(split[1]) == 2:  # insertion: item/method/variant
                method, variant = split[1]
                reasons[(split[0], "", method, variant)] = str(reason)
            else:  # a PIC curve: item/curve
                part_skips.append((split[0], split[1][0], str(reason)))
        return reasons, part_skips

    def _expand_curve_skips(self, part_skips: list[tuple[str, str, str]]) -> None:
        """A layout-1 curve skip named the image only: it applies to each of its scorable maps without that curve."""
        have = {(c.item, c.unit, c.method, c.variant, c.name) for c in self.curves}
        for item, name, reason in part_skips:
            for m in self.maps:
                if m.item == item and m.scorable and (item, m.unit, m.method, m.variant, name) not in have:
                    self.curve_skips.append(CurveSkip(item, m.unit, m.method, m.variant, name, reason))
