"""A run's records as the report's tables: one aggregation, the header's facts, and sections of plain text.

:func:`summarize` turns a store's records into a :class:`Table` through the one aggregation
(:func:`~attrdist.bench.results.aggregate`), plus the AUC of each median insertion curve; :func:`sections` and
:func:`header` are the report's content once, as plain text that each format (:mod:`.formats`) escapes.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np

from ...metrics import METRICS
from ...metrics.insertion import PicCurve, aggregate_curves
from ..ranking import judge, rank
from ..records import CurveSkip, MapCheck, SkippedItem
from ..results import Cell, aggregate, change, is_count, relative
from ..store import ResultStore

__all__ = ["UNKNOWN_VERSION", "WIDE_VARIANTS", "Section", "Table", "config_yaml", "display", "header",
           "higher_is_better", "median_curves", "metric_key", "plain", "sections", "summarize"]

#: Order of the metric columns: by task, then registration order; unknown metrics last.
_TASK_ORDER = ("localization", "insertion", "similarity", "count")

#: What the header says of a run recorded before attrdist wrote its version into the store.
UNKNOWN_VERSION = "unknown (run made before versions were recorded)"


def metric_key(name: str) -> tuple[int, int, str]:
    """The sort key of a metric column: by task, then registration order; unknown metrics last."""
    names = METRICS.names()
    if name in METRICS:  # a benchmark's own task (not one of the built-in ones) comes after them
        task = METRICS.get(name).task
        return (_TASK_ORDER.index(task) if task in _TASK_ORDER else len(_TASK_ORDER)), names.index(name), name
    return len(_TASK_ORDER) + 1, 0, name


def higher_is_better(metric: str) -> bool:
    """The registered direction of a metric (unregistered metrics count as higher-is-better)."""
    return METRICS.get(metric).higher_is_better if metric in METRICS else True


def display(method: str) -> str:
    """A method's name for figures ("Guided Backprop")."""
    from ...methods import METHODS

    return (METHODS.get(method).display_name or method) if method in METHODS else method


@dataclass
class Table:
    """A run's results through :func:`~attrdist.bench.results.aggregate`, in the report's order.

    Attributes:
        methods: Methods, in the run's order.
        variants: ``"vanilla"`` first, then the variants in the run's order.
        metrics: The columns: averaged metrics and the AUCs of median curves (``aic_median_curve``), then count
            metrics.
        cells: ``(method, variant, metric) -> Cell``: paired means, changes and their intervals.
        counts: ``(method, variant, count metric) -> (maps counted, maps)``.
        unscorable: ``(method, variant) -> (maps that could not be scored, maps)``.
        items: Items with results.
        config: The run's stored configuration.
        info: What the run recorded about itself (:meth:`~attrdist.bench.store.ResultStore.info`; empty for old
            runs).
        skipped_items: Items skipped as a whole (no result at all).
        unscorable_maps: The maps that could not be scored, with their reasons.
        curve_skips: The curves that could not be computed, with their reasons.
    """

    methods: list[str]
    variants: list[str]
    metrics: list[str]
    cells: dict[tuple[str, str, str], Cell]
    counts: dict[tuple[str, str, str], tuple[int, int]]
    unscorable: dict[tuple[str, str], tuple[int, int]]
    items: int
    config: dict = field(default_factory=dict)
    info: dict = field(default_factory=dict)
    skipped_items: list[SkippedItem] = field(default_factory=list)
    unscorable_maps: list[MapCheck] = field(default_factory=list)
    curve_skips: list[CurveSkip] = field(default_factory=list)

    @property
    def mean(self) -> dict[tuple[str, str, str], float]:
        """Means per (method, variant, metric): a variant's over the maps paired with vanilla's."""
        return {k: c.mean for k, c in self.cells.items()}

    def change(self, method: str, variant: str, metric: str) -> float:
        """Change of ``variant`` against vanilla on the same maps (percent, or a difference; nan if unknown)."""
        c = self.cells.get((method, variant, metric))
        return c.change if c is not None and variant != "vanilla" else math.nan

    def improves(self, method: str, variant: str, metric: str) -> bool:
        """Whether ``variant`` is better than vanilla on ``metric`` (by the metric's direction)."""
        c = self.change(method, variant, metric)
        return not math.isnan(c) and (c > 0 if higher_is_better(metric) else c < 0)

    def skips(self) -> list[tuple[str, str]]:
        """``(what, reason)`` of everything recorded as not scored: items, maps and curves (for display)."""
        return ([(f"item {s.item}", s.reason) for s in self.skipped_items]
                + [(f"map {m.item} {m.unit} {m.method} {m.variant}", m.reason or "") for m in self.unscorable_maps]
                + [(f"curve {c.name} of {c.item} {c.unit} {c.method} {c.variant}", c.reason) for c in self.curve_skips])


def median_curves(store: ResultStore) -> dict[tuple[str, str, str], Cell]:
    """The AUC of each median insertion curve, against vanilla's, over the images where every variant has a curve.

    Returns:
        ``(method, variant, "aic_median_curve" or "sic_median_curve") -> Cell``: one AUC per median curve, no items
        to resample, so no interval (not a zero-width one).
    """
    cells: dict[tuple[str, str, str], Cell] = {}
    for name in ("aic", "sic"):
        by_key: dict[tuple[str, str], dict[str, np.ndarray]] = defaultdict(dict)
        for c in store.curves(name):
            by_key[(c.method, c.variant)][c.item] = np.asarray(c.values)
        for method in dict.fromkeys(m for m, _ in by_key):
            per_variant = {v: curves for (m, v), curves in by_key.items() if m == method}
            common = sorted(set.intersection(*(set(c) for c in per_variant.values())))
            if not common:
                continue
            auc = {v: aggregate_curves([PicCurve(np.linspace(0, 1, len(curves[i])), curves[i], 0.0) for i in common],
                                       "median").auc for v, curves in per_variant.items()}
            column = f"{name}_median_curve"
            for variant, value in auc.items():
                base = auc.get("vanilla", math.nan)
                cells[(method, variant, column)] = Cell(
                    value, base, change(value, base, column) if variant != "vanilla" else 0.0,
                    (math.nan, math.nan), len(common), len(common))
    return cells


def _order(found: list[str], configured: object) -> list[str]:
    """``found`` in the order of the configuration's names, then the others in order of appearance."""
    names = [n for n in configured if isinstance(n, str)] if isinstance(configured, list | dict) else []
    return [n for n in names if n in found] + [n for n in found if n not in names]


def summarize(store: ResultStore, unit: str | None = None, bootstrap: int = 2000) -> Table:
    """Aggregate the store's scores (of one unit only, if given), plus the AUCs of median curves.

    Args:
        store: An open results store.
        unit: Only records of this unit (``None``: every unit).
        bootstrap: Resamples of the intervals.

    Returns:
        The :class:`Table`, with the run's configuration and recorded facts for the report's header.
    """
    maps = [m for m in store.maps() if unit is None or m.unit == unit]
    agg = aggregate([s for s in store.scores() if unit is None or s.unit == unit], maps, bootstrap=bootstrap)
    medians = median_curves(store)
    cfg = store.config()
    methods = _order(agg.methods, cfg.get("methods"))
    variants = ["vanilla", *_order([v for v in agg.variants if v != "vanilla"], cfg.get("variants"))]
    count_metrics = list(dict.fromkeys(k[2] for k in agg.counts))
    metrics = sorted([*agg.metrics, *dict.fromkeys(k[2] for k in medians), *count_metrics], key=metric_key)
    return Table(methods, variants, metrics, {**agg.cells, **medians}, agg.counts, agg.unscorable, agg.items, cfg,
                 store.info(), store.skipped(), [m for m in maps if not m.scorable], store.curve_skips())


# ---------------------------------------------------------------------------------------------------------------
# the report's content, once: header facts and sections of plain text, rendered (and escaped) by each format


def plain(value: object) -> str:
    """A value from the database as one line of text (control characters and line breaks become spaces)."""
    text = value if isinstance(value, str) else str(value)
    return "".join(" " if unicodedata.category(ch) in ("Cc", "Zl", "Zp") else ch for ch in text)


def _skip_reasons(skipped: list[tuple[str, str]]) -> list[tuple[str, int]]:
    """Skip reasons with their counts, most frequent first.

    Reasons that differ only in numbers count together; a number they do not share reads ``...``
    ("prediction on the original image ... < min_pred 0.8").
    """
    number = r"(\d+(?:\.\d+)?(?:e[-+]?\d+)?)"
    groups: dict[str, list[list[str]]] = {}
    for _item, reason in skipped:
        parts = re.split(number, plain(reason))
        groups.setdefault(re.sub(number, "#", plain(reason)), []).append(parts)
    out = []
    for texts in groups.values():
        shown = [p if i % 2 == 0 or all(t[i] == p for t in texts) else "..." for i, p in enumerate(texts[0])]
        out.append(("".join(shown), len(texts)))
    return sorted(out, key=lambda r: (-r[1], r[0]))


def header(t: Table) -> list[tuple[str, str]]:
    """The facts a report opens with, as ``(label, value)`` lines of plain text (unescaped).

    Model and weights, dataset and its size, items scored and skipped (with the count per reason), methods,
    variants, date and attrdist version; what an old run did not record reads "unknown".
    """
    cfg, info = t.config, t.info
    weights = cfg.get("weights")
    size = info.get("dataset_size")
    dataset = plain(cfg.get("dataset", "unknown"))
    dataset += f" ({size} items)" if size is not None else " (size not recorded)"
    scored = f"{t.items} scored"
    if info.get("items") is not None:
        scored += f" of {info['items']} selected"
    scored += f"; {len(t.skipped_items)} skipped as a whole"
    recorded = t.skips()
    if recorded:
        skips = f"{len(recorded)} recorded (an item, or one curve or map of an item): " + "; ".join(
            f"{reason}: {n}" for reason, n in _skip_reasons(recorded))
    else:
        skips = "none recorded"
    given = cfg.get("variants")
    specs: dict = given if isinstance(given, dict) else {}
    variants = ["vanilla (the raw maps)"]
    for v in t.variants[1:]:
        spec = specs.get(v)
        detail = ", ".join(f"{k} {plain(x)}" for k, x in spec.items()) if isinstance(spec, dict) else ""
        variants.append(f"{v} ({detail})" if detail else v)
    return [
        ("benchmark", plain(cfg.get("benchmark", "unknown"))),
        ("model", plain(cfg.get("model", "unknown"))),
        ("weights", plain(weights) if weights not in (None, "") else "the model's default (none given)"),
        ("dataset", dataset),
        ("items", scored),
        ("skips", skips),
        ("methods", ", ".join(plain(m) for m in t.methods) or "none"),
        ("variants", "; ".join(plain(v) for v in variants)),
        ("date", plain(info["started"]) if info.get("started") else "unknown"),
        ("attrdist", plain(info["attrdist"]) if info.get("attrdist") else UNKNOWN_VERSION),
    ]


def config_yaml(t: Table) -> str:
    """The run's configuration as YAML text."""
    import yaml

    return yaml.safe_dump(t.config, sort_keys=False, allow_unicode=True, default_flow_style=False).rstrip("\n")


class _Text(str):
    """A table cell's text; ``verdict`` (``better``, ``worse``, ``same``) lets HTML colour a change."""

    verdict = ""


def _cell_text(text: str, verdict: str = "") -> _Text:
    out = _Text(text)
    out.verdict = verdict
    return out


@dataclass
class Section:
    """One table of the report (plain text; each format escapes it)."""

    title: str
    columns: list[str]
    rows: list[list[str]]


def _mean(c: Cell | None) -> str:
    """``mean [low, high]``: the mean with its bootstrap interval (``-`` without a mean)."""
    if c is None or math.isnan(c.mean):
        return "-"
    lo, hi = c.mean_ci
    return f"{c.mean:.3f}" if math.isnan(lo) else f"{c.mean:.3f} [{lo:.3f}, {hi:.3f}]"


def _verdict(t: Table, method: str, variant: str, metric: str) -> str:
    c = t.change(method, variant, metric)
    return "better" if t.improves(method, variant, metric) else ("same" if c == 0 else "worse")


def _change(t: Table, method: str, variant: str, metric: str) -> _Text:
    c = t.change(method, variant, metric)
    if math.isnan(c):
        return _cell_text("-")
    verdict = _verdict(t, method, variant, metric)
    lo, hi = t.cells[(method, variant, metric)].ci
    unit = "%" if relative(metric) else ""
    digits = ".1f" if relative(metric) else ".3f"
    ci = "" if math.isnan(lo) else f" [{lo:+{digits}}, {hi:+{digits}}]"
    return _cell_text(f"{c:+{digits}}{unit}{ci}, {verdict}", verdict)


def _header(metric: str, variant: str) -> str:
    arrow = "" if is_count(metric) or higher_is_better(metric) else ", lower is better"
    return f"{metric} ({variant}{arrow})"


#: Variants (besides vanilla) up to which a metric's table has a column pair per variant; beyond, a row per variant.
WIDE_VARIANTS = 2


def _unscorable_total(t: Table, variant: str, methods: list[str]) -> str:
    n, total = (sum(x[i] for (m, v), x in t.unscorable.items() if v == variant and m in methods) for i in (0, 1))
    return f"{n}/{total} in all" if total else "-"


def _average_change(t: Table, variant: str, metric: str, methods: list[str]) -> str:
    changes = [c for c in (t.change(m, variant, metric) for m in methods) if not math.isnan(c)]
    if not changes:
        return "-"
    mean = sum(changes) / len(changes)
    better = mean > 0 if higher_is_better(metric) else mean < 0
    verdict = "better" if better else ("same" if mean == 0 else "worse")
    text = f"{mean:+.1f}%" if relative(metric) else f"{mean:+.3f}"
    return _cell_text(f"{text}, {verdict}", verdict)


def _metric_section(t: Table, metric: str) -> Section | None:
    """One metric's table: vanilla, each variant's mean and change, unscorable maps (methods with data only).

    Up to :data:`WIDE_VARIANTS` variants: a row per method, vanilla and each variant's mean and change as
    columns. More variants: a row per method and variant (vanilla first), so that the table stays narrow.
    """
    methods = [m for m in t.methods if any((m, v, metric) in t.cells for v in t.variants)]
    if not methods:
        return None
    variants = t.variants[1:]
    title = f"{metric} ({'higher' if higher_is_better(metric) else 'lower'} is better)"
    if len(variants) > WIDE_VARIANTS:
        columns = ["method", "variant", _header(metric, "mean"), "change against vanilla", "unscorable"]
        rows = []
        for m in methods:
            for v in t.variants:
                rows.append([m, v, _mean(t.cells.get((m, v, metric))), "" if v == "vanilla" else
                             _change(t, m, v, metric), _count(t.unscorable.get((m, v)))])
        rows += [["average change", v, "", _average_change(t, v, metric, methods), _unscorable_total(t, v, methods)]
                 for v in variants]
        return Section(title, columns, rows)
    columns = ["method", _header(metric, "vanilla")]
    for v in variants:
        columns += [v, f"{v}: change"]
    columns += [f"unscorable ({v})" for v in t.variants]
    rows = []
    for m in methods:
        row = [m, _mean(t.cells.get((m, "vanilla", metric)))]
        for v in variants:
            row += [_mean(t.cells.get((m, v, metric))), _change(t, m, v, metric)]
        row += [_count(t.unscorable.get((m, v))) for v in t.variants]
        rows.append(row)
    avg = ["average change", ""]
    for v in variants:
        avg += ["", _average_change(t, v, metric, methods)]
    rows.append(avg + [_unscorable_total(t, v, methods) for v in t.variants])
    return Section(title, columns, rows)


def _count(n: tuple[int, int] | None) -> str:
    return "-" if n is None else f"{n[0]}/{n[1]}"


def _count_section(t: Table) -> Section | None:
    """Unscorable maps and the count metrics (``no_positive``) as ``n/N`` per method and variant, never averaged."""
    tallies = {"unscorable": {(m, v): n for (m, v), n in t.unscorable.items()}}
    tallies.update({c: {(m, v): n for (m, v, metric), n in t.counts.items() if metric == c}
                    for c in t.metrics if is_count(c)})
    methods = [m for m in t.methods if any((m, v) in tally for v in t.variants for tally in tallies.values())]
    if not methods:
        return None

    def total(c: str, v: str) -> str:
        n, maps = (sum(x[i] for (_, var), x in tallies[c].items() if var == v) for i in (0, 1))
        return f"{n}/{maps}" if maps else "-"

    title = "maps counted (n/N, never averaged)"
    if len(t.variants) - 1 > WIDE_VARIANTS:
        rows = [[m, v] + [_count(tallies[c].get((m, v))) for c in tallies] for m in methods for v in t.variants]
        rows += [["in all", v] + [total(c, v) for c in tallies] for v in t.variants]
        return Section(title, ["method", "variant", *tallies], rows)
    rows = [[m] + [_count(tallies[c].get((m, v))) for c in tallies for v in t.variants] for m in methods]
    rows.append(["in all"] + [total(c, v) for c in tallies for v in t.variants])
    return Section(title, ["method"] + [_header(c, v) for c in tallies for v in t.variants], rows)


def _unscorable_of(t: Table, variant: str) -> tuple[int, int]:
    """``(maps that could not be scored, maps)`` of a variant, over every method."""
    return (sum(n for (_, v), (n, _) in t.unscorable.items() if v == variant),
            sum(total for (_, v), (_, total) in t.unscorable.items() if v == variant))


def _ranking_section(t: Table) -> Section | None:
    """The variants ranked by the study's rule (:mod:`~attrdist.bench.ranking`) on this run's intervals."""
    if len(t.variants) <= 2:
        return None
    averaged = [m for m in t.metrics if not is_count(m) and not m.endswith("_median_curve")]
    verdicts = []
    for v in t.variants[1:]:
        changes = {(m, metric): t.cells[(m, v, metric)] for m in t.methods for metric in averaged
                   if (m, v, metric) in t.cells}
        verdicts.append(judge(v, changes, {"this run": _unscorable_of(t, v)},
                              {"this run": _unscorable_of(t, "vanilla")}))
    rows = [[r.variant, "yes" if r.eligible else "no", str(len(r.harms)), str(r.benefits),
             "-" if math.isnan(r.mean_ra_change) else f"{r.mean_ra_change:+.1f}%"] for r in rank(verdicts)]
    return Section("variants ranked (the variant study's rule, on this run's 95% intervals)",
                   ["variant", "no harm", "harms", "improvements", "mean change (RA)"], rows)


def sections(t: Table) -> list[Section]:
    """The report's tables, as plain text: a table per metric column, the counts, and the variants ranked."""
    metric_sections = [_metric_section(t, m) for m in t.metrics if not is_count(m)]
    return [s for s in (*metric_sections, _count_section(t), _ranking_section(t)) if s is not None]


def notes(t: Table) -> list[str]:
    """The notes under the tables: how to read a cell, and what was not scored."""
    recorded = t.skips()
    shown = [f"{plain(what)} ({plain(reason)})" for what, reason in recorded[:10]]
    return [
        "Each cell: mean [bootstrap 95% interval over items]. Each variant is compared with vanilla on the maps "
        "both could score (paired means; vanilla's column: all its scorable maps); its change against vanilla is "
        "a percentage (or a difference, for metrics around 0) with its interval from the same resampled items. "
        "Unscorable: maps that could not be scored (all zero, constant or non-finite), n/N, never averaged.",
        f"{t.items} items; {len(recorded)} skips recorded (items, maps or curves)."
        + ("" if not shown else " Skipped: " + "; ".join(shown) + (" ..." if len(recorded) > len(shown) else "")),
    ]
