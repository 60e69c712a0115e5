"""Reports of benchmark runs: Markdown, LaTeX, a self-contained HTML page and a tidy CSV, plus each benchmark's plots.

Every report opens with its context (benchmark, model and weights, dataset and its size, items scored and
skipped with the count per reason, date, attrdist version) and ends with the run's full configuration. Then one
table per metric: a row per method; the vanilla mean with its bootstrap 95% interval, and for each VAR variant
its mean and its change against vanilla, each with its interval, the change marked better or worse by the
metric's registered direction (a falling sanity similarity or deletion AUC is an improvement); the maps each
variant could not score (``n/N``); an average-change row over methods. A variant is compared with vanilla on the
maps both could score (:mod:`~attrdist.bench.results`, the one aggregation); maps that cannot be scored
(``zeroed``: all zero, constant or non-finite) and the other count metrics are shown as ``n/N``, never averaged.
The benchmark's registry entry names the unit its table summarises and draws its figures.

Names come from a results database, which may come from someone else: every format escapes them (HTML, TeX,
Markdown table cells, spreadsheet formulas in CSV cells), and figure file names derived from them are sanitised
and kept apart.
"""

from __future__ import annotations

import csv
import hashlib
import math
import re
import sqlite3
import unicodedata
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..metrics import METRICS
from ..metrics.insertion import PicCurve, aggregate_curves
from .results import UNSCORABLE, Cell, aggregate, is_count, relative
from .store import ResultStore

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["Table", "bar_plots", "csv_rows", "curve_plots", "header", "html", "latex", "markdown", "sanity_plot",
           "summarize", "variant_summary", "write_report"]

#: Order of the metric columns: by task, then registration order; unknown metrics last.
_TASK_ORDER = ("localization", "insertion", "similarity", "count")

#: What the header says of a run recorded before attrdist wrote its version into the store.
UNKNOWN_VERSION = "unknown (run made before versions were recorded)"


def _metric_key(name: str) -> tuple[int, int, str]:
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
    from ..methods import METHODS

    return (METHODS.get(method).display_name or method) if method in METHODS else method


@dataclass
class Table:
    """A run's results through :func:`~attrdist.bench.results.aggregate`, in the report's order.

    Attributes:
        methods: Methods, in the run's order.
        variants: ``"vanilla"`` first, then the variants in the run's order.
        metrics: Averaged metrics, then count metrics.
        cells: ``(method, variant, metric) -> Cell``: paired means, changes and their intervals.
        counts: ``(method, variant, count metric) -> (maps counted, maps)``.
        items: Items with results.
        skipped: ``(item, reason)`` of the recorded skips (an item, or one curve or map of an item).
        config: The run's stored configuration.
        info: What the run recorded about itself (:meth:`~attrdist.bench.store.ResultStore.info`; empty for old
            runs).
        skipped_items: Items skipped as a whole (no result at all).
    """

    methods: list[str]
    variants: list[str]
    metrics: list[str]
    cells: dict[tuple[str, str, str], Cell]
    counts: dict[tuple[str, str, str], tuple[int, int]]
    items: int
    skipped: list[tuple[str, str]]
    config: dict = field(default_factory=dict)
    info: dict = field(default_factory=dict)
    skipped_items: list[str] = field(default_factory=list)

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

    def unscorable(self, method: str, variant: str) -> tuple[int, int]:
        """``(maps that could not be scored, maps)`` of a method and variant."""
        return self.counts.get((method, variant, UNSCORABLE), (0, 0))


def _median_curve_rows(store: ResultStore) -> list[tuple]:
    """The AUCs of the median PIC curves, over the images where every variant of a method has a curve."""
    rows = []
    for name in ("aic", "sic"):
        by_key: dict[tuple, dict[str, np.ndarray]] = defaultdict(dict)
        for item, _unit, method, variant, values in store.curves(name):
            by_key[(method, variant)][item] = np.asarray(values)
        for method in dict.fromkeys(m for m, _ in by_key):
            per_variant = {v: c for (m, v), c in by_key.items() if m == method}
            common = set.intersection(*(set(c) for c in per_variant.values()))
            for variant, curves in per_variant.items():
                if common:
                    ys = [curves[i] for i in sorted(common)]
                    agg = aggregate_curves([PicCurve(np.linspace(0, 1, len(y)), y, 0.0) for y in ys], "median")
                    rows.append(("*", "*", method, variant, f"{name}_median_curve", agg.auc))
    return rows


def _whole_items(skipped: Iterable[tuple[str, str]], scored: set[str]) -> list[str]:
    """The skips that name an item without results (not ``item/curve`` or ``item/.../map`` of a scored item)."""
    out = []
    for key, _reason in skipped:
        cuts = [i for i, ch in enumerate(key) if ch == "/"]
        if not any(key[:i] in scored for i in cuts):
            out.append(key)
    return out


def summarize(store: ResultStore, unit: str | None = None, bootstrap: int = 2000) -> Table:
    """Aggregate the store's rows (of one unit only, if given), plus the AUCs of median curves.

    Args:
        store: An open results store.
        unit: Only rows of this unit (``None``: every unit).
        bootstrap: Resamples of the intervals.

    Returns:
        The :class:`Table`, with the run's configuration and recorded facts for the report's header.
    """
    all_rows = store.rows()
    rows = [r for r in all_rows if (unit is None or r[1] == unit) and r[4] != "fraction"]
    agg = aggregate(rows, bootstrap=bootstrap)
    # one AUC per median curve, no items to resample: its change gets no interval (not a zero-width one)
    medians = aggregate(_median_curve_rows(store), bootstrap=0)
    cfg = store.config()
    cfg_methods = [m for m in cfg.get("methods", []) if isinstance(m, str)]
    cfg_variants = [v for v in (cfg.get("variants") or {}) if isinstance(v, str)]
    methods = [m for m in cfg_methods if m in agg.methods] + [m for m in agg.methods if m not in cfg_methods]
    variants = ["vanilla"] + [v for v in cfg_variants if v in agg.variants] + [
        v for v in agg.variants if v != "vanilla" and v not in cfg_variants]
    count_metrics = list(dict.fromkeys(k[2] for k in agg.counts))
    metrics = sorted(agg.metrics + medians.metrics + count_metrics, key=_metric_key)
    skipped = store.skipped()
    return Table(methods, variants, metrics, {**agg.cells, **medians.cells}, agg.counts, agg.items, skipped,
                 cfg, store.info(), _whole_items(skipped, {r[0] for r in all_rows}))


# ---------------------------------------------------------------------------------------------------------------
# the report's content, once: header facts and sections of plain text, rendered (and escaped) by each format


def _text(value: object) -> str:
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
        parts = re.split(number, _text(reason))
        groups.setdefault(re.sub(number, "#", _text(reason)), []).append(parts)
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
    dataset = _text(cfg.get("dataset", "unknown"))
    dataset += f" ({size} items)" if size is not None else " (size not recorded)"
    scored = f"{t.items} scored"
    if info.get("items") is not None:
        scored += f" of {info['items']} selected"
    scored += f"; {len(t.skipped_items)} skipped as a whole"
    if t.skipped:
        skips = f"{len(t.skipped)} recorded (an item, or one curve or map of an item): " + "; ".join(
            f"{reason}: {n}" for reason, n in _skip_reasons(t.skipped))
    else:
        skips = "none recorded"
    specs = cfg.get("variants") if isinstance(cfg.get("variants"), dict) else {}
    variants = ["vanilla (the raw maps)"]
    for v in t.variants[1:]:
        spec = specs.get(v)
        detail = ", ".join(f"{k} {_text(x)}" for k, x in spec.items()) if isinstance(spec, dict) else ""
        variants.append(f"{v} ({detail})" if detail else v)
    return [
        ("benchmark", _text(cfg.get("benchmark", "unknown"))),
        ("model", _text(cfg.get("model", "unknown"))),
        ("weights", _text(weights) if weights not in (None, "") else "the model's default (none given)"),
        ("dataset", dataset),
        ("items", scored),
        ("skips", skips),
        ("methods", ", ".join(_text(m) for m in t.methods) or "none"),
        ("variants", "; ".join(_text(v) for v in variants)),
        ("date", _text(info["started"]) if info.get("started") else "unknown"),
        ("attrdist", _text(info["attrdist"]) if info.get("attrdist") else UNKNOWN_VERSION),
    ]


def _config_yaml(t: Table) -> str:
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
class _Section:
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
    n, total = (sum(x[i] for k, x in t.counts.items() if k[1] == variant and k[2] == UNSCORABLE and k[0] in methods)
                for i in (0, 1))
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


def _metric_section(t: Table, metric: str) -> _Section | None:
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
                             _change(t, m, v, metric), _count(t.counts.get((m, v, UNSCORABLE)))])
        rows += [["average change", v, "", _average_change(t, v, metric, methods), _unscorable_total(t, v, methods)]
                 for v in variants]
        return _Section(title, columns, rows)
    columns = ["method", _header(metric, "vanilla")]
    for v in variants:
        columns += [v, f"{v}: change"]
    columns += [f"unscorable ({v})" for v in t.variants]
    rows = []
    for m in methods:
        row = [m, _mean(t.cells.get((m, "vanilla", metric)))]
        for v in variants:
            row += [_mean(t.cells.get((m, v, metric))), _change(t, m, v, metric)]
        row += [_count(t.counts.get((m, v, UNSCORABLE))) for v in t.variants]
        rows.append(row)
    avg = ["average change", ""]
    for v in variants:
        avg += ["", _average_change(t, v, metric, methods)]
    rows.append(avg + [_unscorable_total(t, v, methods) for v in t.variants])
    return _Section(title, columns, rows)


def _count(n: tuple[int, int] | None) -> str:
    return "-" if n is None else f"{n[0]}/{n[1]}"


def _count_section(t: Table) -> _Section | None:
    """The count metrics (``zeroed``, ``no_positive``) as ``n/N`` per method and variant, never averaged."""
    counts = [m for m in t.metrics if is_count(m)]
    methods = [m for m in t.methods if any((m, v, c) in t.counts for v in t.variants for c in counts)]
    if not counts or not methods:
        return None

    def total(c: str, v: str) -> str:
        n, maps = (sum(x[i] for k, x in t.counts.items() if k[1] == v and k[2] == c) for i in (0, 1))
        return f"{n}/{maps}" if maps else "-"

    title = "maps counted (n/N, never averaged)"
    if len(t.variants) - 1 > WIDE_VARIANTS:
        rows = [[m, v] + [_count(t.counts.get((m, v, c))) for c in counts] for m in methods for v in t.variants]
        rows += [["in all", v] + [total(c, v) for c in counts] for v in t.variants]
        return _Section(title, ["method", "variant", *counts], rows)
    rows = [[m] + [_count(t.counts.get((m, v, c))) for c in counts for v in t.variants] for m in methods]
    rows.append(["in all"] + [total(c, v) for c in counts for v in t.variants])
    return _Section(title, ["method"] + [_header(c, v) for c in counts for v in t.variants], rows)


def variant_summary(t: Table, metric: str = "region_attribution") -> list[dict]:
    """Per VAR variant: for how many methods it beats vanilla on each metric, and how many maps it zeroed.

    Returns:
        One dict per variant, best first by the rule used to pick the default preset: no zeroed map, then
        the most methods improved on ``metric``, then the largest mean relative change.
    """
    out = []
    for v in t.variants[1:]:
        row: dict = {"variant": v}
        for m in ("region_attribution", "iou", "f1"):
            row[m] = sum(1 for meth in t.methods if t.improves(meth, v, m))
        changes = [c for c in (t.change(meth, v, metric) for meth in t.methods) if not math.isnan(c)]
        row["mean_change"] = sum(changes) / len(changes) if changes else math.nan
        for count in (m for m in t.metrics if is_count(m)):
            row[count] = sum(n for k, (n, _) in t.counts.items() if k[1] == v and k[2] == count)
        row.setdefault("zeroed", 0)
        out.append(row)
    return sorted(out, key=lambda r: (r["zeroed"] > 0, -r[metric], -r["mean_change"]))


def _summary_section(t: Table) -> _Section | None:
    if not (len(t.variants) > 2 and "region_attribution" in t.metrics):
        return None
    n = len(t.methods)
    rows = [[r["variant"], f"{r['region_attribution']}/{n}", f"{r['iou']}/{n}", f"{r['f1']}/{n}",
             "-" if math.isnan(r["mean_change"]) else f"{r['mean_change']:+.1f}%", str(r["zeroed"])]
            for r in variant_summary(t)]
    return _Section("variants compared", ["variant", "methods improved: region attribution", "IoU", "F1",
                                          "mean change (RA)", "maps zeroed"], rows)


def _sections(t: Table) -> list[_Section]:
    metric_sections = [_metric_section(t, m) for m in t.metrics if not is_count(m)]
    return [s for s in (*metric_sections, _count_section(t), _summary_section(t)) if s is not None]


def _notes(t: Table) -> list[str]:
    shown = [f"{_text(i)} ({_text(r)})" for i, r in t.skipped[:10]]
    return [
        "Each cell: mean [bootstrap 95% interval over items]. Each variant is compared with vanilla on the maps "
        "both could score (paired means; vanilla's column: all its scorable maps); its change against vanilla is "
        "a percentage (or a difference, for metrics around 0) with its interval from the same resampled items. "
        "Unscorable: maps that could not be scored (all zero, constant or non-finite), n/N, never averaged.",
        f"{t.items} items; {len(t.skipped)} skips recorded (item or item/curve or item/map)."
        + ("" if not shown else " Skipped: " + "; ".join(shown) + (" ..." if len(t.skipped) > len(shown) else "")),
    ]


# ---------------------------------------------------------------------------------------------------------------
# Markdown


def _md(value: object) -> str:
    """Text for a Markdown table cell or line: one line, no cell break, no HTML, autolink, link or code span.

    A link needs ``](`` or ``][`` (there are no reference definitions), so only such a ``]`` is escaped and
    intervals read ``[0.1, 0.2]`` in the raw text too.
    """
    text = re.sub(r"([\\|<>`])", r"\\\1", _text(value))
    return re.sub(r"\](?=[(\[])", r"\\]", text)


def markdown(t: Table) -> str:
    """The report as Markdown: header, a table per metric, counts, notes, and the run's configuration (YAML)."""
    title = f"# attrdist report: {_md(t.config.get('benchmark', 'benchmark'))}"
    lines = [title, ""] + [f"- {label}: {_md(value)}" for label, value in header(t)]
    for s in _sections(t):
        lines += ["", f"## {_md(s.title)}", "", "| " + " | ".join(_md(c) for c in s.columns) + " |",
                  "|" + "---|" * len(s.columns)]
        lines += ["| " + " | ".join(_md(c) for c in row) + " |" for row in s.rows]
    lines += [""] + [_md(n) + "\n" for n in _notes(t)]
    text = _config_yaml(t)
    fence = "`" * max(3, 1 + max((len(run) for run in re.findall(r"`+", text)), default=0))
    lines += ["## Run configuration", "", fence + "yaml", text, fence]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------------------------------
# LaTeX

_TEX = {"\\": r"\textbackslash{}", "{": r"\{", "}": r"\}", "_": r"\_", "%": r"\%", "&": r"\&", "#": r"\#",
        "$": r"\$", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}", "<": r"\textless{}",
        ">": r"\textgreater{}", "[": "{[}", "]": "{]}"}


def _tex(value: object) -> str:
    """Text for TeX: every special character escaped, brackets braced (a row may not start an optional argument)."""
    return re.sub(r"[\\{}_%&#$~^<>\[\]]", lambda m: _TEX[m.group()], _text(value))


def _tex_comment(text: str) -> list[str]:
    return ["% " + _text(line) for line in (text.splitlines() or [""])]


def latex(t: Table) -> str:
    """The report as LaTeX: the header and configuration as comments, a captioned table per metric (booktabs)."""
    facts = dict(header(t))
    out = [f"% attrdist report: {_text(t.config.get('benchmark', 'benchmark'))} (needs \\usepackage{{booktabs}})"]
    out += [f"% {label}: {_text(value)}" for label, value in header(t)]
    out += ["% run configuration:"] + _tex_comment(_config_yaml(t))
    context = (f"Model {facts['model']} (weights: {facts['weights']}), dataset {facts['dataset']}, {t.items} items, "
               f"attrdist {facts['attrdist']}.")
    for s in _sections(t):
        caption = (f"{s.title}. Mean [bootstrap 95% interval]; change against vanilla on the maps both could score. "
                   f"{context}")
        out += ["", r"\begin{table}[htbp]", r"\centering", r"\caption{" + _tex(caption) + "}",
                r"\begin{tabular}{l" + "r" * (len(s.columns) - 1) + "}", r"\toprule",
                " & ".join(_tex(c) for c in s.columns) + r" \\", r"\midrule"]
        out += [" & ".join(_tex(c) for c in row) + r" \\" for row in s.rows]
        out += [r"\bottomrule", r"\end{tabular}", r"\end{table}"]
    return "\n".join(out) + "\n"


# ---------------------------------------------------------------------------------------------------------------
# HTML

_CSS = """
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 2em auto; max-width: 75em;
       padding: 0 1em; color: #1a1a1a; }
h1 { font-size: 1.5em; } h2 { font-size: 1.15em; margin-top: 2em; }
table { border-collapse: collapse; margin: 0.5em 0 1em; }
th, td { border-bottom: 1px solid #ddd; padding: 0.3em 0.7em; text-align: right; white-space: nowrap; }
th { background: #f3f3f3; } td:first-child, th:first-child { text-align: left; }
td { font-variant-numeric: tabular-nums; }
table.facts th { text-align: left; width: 8em; } table.facts td { text-align: left; white-space: normal; }
.better { color: #0b6e2e; } .worse { color: #a4262c; }
figure { display: inline-block; margin: 0.5em 1em 1em 0; vertical-align: top; }
figure img { max-width: 100%; height: auto; } figcaption { font-size: 0.9em; color: #555; }
pre { background: #f6f6f6; padding: 0.8em; overflow-x: auto; }
.notes { color: #444; max-width: 60em; }
"""

_IMAGE_TYPES = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".svg": "image/svg+xml"}


def _figure_html(name: str, path: Path) -> str:
    """A figure file inline (base64 data URI): the page needs no file beside it and fetches nothing."""
    import base64
    from html import escape

    kind = _IMAGE_TYPES.get(path.suffix.lower())
    if kind is None or not path.is_file():
        return ""
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return (f'<figure><img alt="{escape(_text(name))}" src="data:{kind};base64,{data}">'
            f"<figcaption>{escape(_text(name))}</figcaption></figure>")


def html(t: Table, figures: dict[str, Path] | None = None) -> str:
    """The report as one self-contained HTML page: CSS and figures inline, nothing fetched, no script.

    Args:
        t: The summarised run.
        figures: Figure files to embed (name -> path), e.g. those :func:`write_report` drew.

    Returns:
        The page.
    """
    from html import escape

    def e(value: object) -> str:
        return escape(_text(value), quote=True)

    bench = t.config.get("benchmark", "benchmark")
    out = ["<!DOCTYPE html>", '<html lang="en">', "<head>", '<meta charset="utf-8">',
           # defence in depth: should a name ever slip through unescaped, the page still runs and fetches nothing
           "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; img-src data:; "
           "style-src 'unsafe-inline'\">",
           '<meta name="viewport" content="width=device-width, initial-scale=1">',
           f"<title>attrdist report: {e(bench)}</title>", f"<style>{_CSS}</style>", "</head>", "<body>",
           f"<h1>attrdist report: {e(bench)}</h1>", '<table class="facts">']
    out += [f"<tr><th>{e(label)}</th><td>{e(value)}</td></tr>" for label, value in header(t)]
    out.append("</table>")
    for s in _sections(t):
        out += [f"<h2>{e(s.title)}</h2>", "<table>", "<thead><tr>" + "".join(f"<th>{e(c)}</th>" for c in s.columns)
                + "</tr></thead>", "<tbody>"]
        for row in s.rows:
            cells = []
            for c in row:
                verdict = getattr(c, "verdict", "")
                cls = f' class="{verdict}"' if verdict in ("better", "worse") else ""
                cells.append(f"<td{cls}>{e(c)}</td>")
            out.append("<tr>" + "".join(cells) + "</tr>")
        out += ["</tbody>", "</table>"]
    out += ['<div class="notes">'] + [f"<p>{e(n)}</p>" for n in _notes(t)] + ["</div>"]
    embedded = [_figure_html(name, Path(path)) for name, path in (figures or {}).items()]
    if any(embedded):
        out += ["<h2>Figures</h2>", "<div>"] + [f for f in embedded if f] + ["</div>"]
    out += ["<details>", "<summary>Run configuration (YAML)</summary>", f"<pre>{escape(_config_yaml(t))}</pre>",
            "</details>", "</body>", "</html>"]
    return "\n".join(out) + "\n"


# ---------------------------------------------------------------------------------------------------------------
# CSV

_CSV_COLUMNS = ["method", "variant", "metric", "kind", "mean", "ci_low", "ci_high", "base", "change", "change_low",
                "change_high", "change_unit", "higher_is_better", "n", "items", "unscorable", "maps"]


def _csv_cell(value: object) -> object:
    """A CSV cell: numbers stay numbers (nan: empty); text that a spreadsheet would run as a formula gets a ``'``."""
    if value is None:
        return ""
    if isinstance(value, bool | int):
        return value
    if isinstance(value, float):
        return "" if math.isnan(value) else value
    text = str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def csv_rows(t: Table) -> list[list[object]]:
    """The long (tidy) table: one row per method, variant and metric; a header row first.

    Averaged metrics (``kind`` ``mean``): the mean and its interval, vanilla's mean on the same maps (``base``),
    the change and its interval, ``n`` maps averaged from ``items`` items. Count metrics (``kind`` ``count``):
    ``n`` maps counted of ``maps``. Every row: the method and variant's ``unscorable`` maps of ``maps``.
    """
    out: list[list[object]] = [list(_CSV_COLUMNS)]
    for m in t.methods:
        for v in t.variants:
            dead, maps = t.unscorable(m, v)
            for metric in t.metrics:
                if is_count(metric):
                    if (m, v, metric) not in t.counts:
                        continue
                    n, total = t.counts[(m, v, metric)]
                    out.append([m, v, metric, "count", *[None] * 9, n, None, dead, total])
                    continue
                c = t.cells.get((m, v, metric))
                if c is None:
                    continue
                van = v == "vanilla"
                out.append([m, v, metric, "mean", c.mean, *c.mean_ci, c.base, None if van else c.change,
                            *((None, None) if van else c.ci), "percent" if relative(metric) else "difference",
                            higher_is_better(metric), c.n, c.items, dead, maps])
    return out


def write_report(run_dir: str | Path) -> dict[str, Path]:
    """Write ``report.md``, ``report.tex``, ``report.html``, ``report.csv`` and the benchmark's figures.

    Args:
        run_dir: A run folder with ``results.sqlite``.

    Returns:
        The written files by kind (``markdown``, ``latex``, ``html``, ``csv``, then the figures).

    Raises:
        FileNotFoundError: If the folder holds no results.
        ValueError: If its ``results.sqlite`` is not a results database.
    """
    from . import BENCHMARKS

    run = Path(run_dir)
    db = run / "results.sqlite"
    if not db.exists():
        raise FileNotFoundError(f"{run}: no results.sqlite (not a benchmark run folder)")
    try:
        with ResultStore(db) as store:
            bench = BENCHMARKS.get(store.config().get("benchmark", "localization"))
            t = summarize(store, unit=bench.report_unit(store))
            figures = bench.plots(store, t, run)
    except sqlite3.OperationalError as err:  # the file is fine, the folder not (read-only, full, locked)
        raise ValueError(f"{db}: cannot open the results database ({err}; is the folder read-only or the disk "
                         "full?)") from None
    except sqlite3.DatabaseError as err:
        raise ValueError(f"{db}: not a readable results database ({err})") from None
    written = {"markdown": _fresh(run / "report.md"), "latex": _fresh(run / "report.tex"),
               "html": _fresh(run / "report.html"), "csv": _fresh(run / "report.csv")}
    written["markdown"].write_text(markdown(t), encoding="utf-8")
    written["latex"].write_text(latex(t), encoding="utf-8")
    written["html"].write_text(html(t, figures), encoding="utf-8")
    with written["csv"].open("w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows([[_csv_cell(v) for v in row] for row in csv_rows(t)])
    written.update(figures)
    return written


# ---------------------------------------------------------------------------------------------------------------
# figures


class _Figures:
    """Figures without pyplot: no backend is chosen or switched (a notebook keeps its own), nothing stays open."""

    @staticmethod
    def subplots(*args: object, figsize: tuple[float, float], **kwargs: object) -> tuple:
        from matplotlib.figure import Figure

        fig = Figure(figsize=figsize)
        return fig, fig.subplots(*args, **kwargs)


def _pyplot() -> _Figures:
    """What the report's figures are drawn with (matplotlib imported only when a report is drawn)."""
    return _Figures()


def _fresh(path: Path) -> Path:
    """``path`` ready to be written: a link there is removed (a run folder may come from someone else)."""
    if path.is_symlink():
        path.unlink()
    return path


def _save(fig: Figure, path: Path) -> Path:
    """Lay out, write (PNG, 200 dpi) and close a figure."""
    from ..viz import save_figure

    fig.tight_layout()
    return save_figure(fig, _fresh(path))[0]


def _label(value: object, limit: int = 48) -> str:
    """A name as figure text: literal (no mathtext from ``$``), shown in legends (no leading ``_``), not too long."""
    text = _text(value)
    text = text if len(text) <= limit else text[:limit - 3] + "..."
    text = text.replace("$", r"\$")
    return " " + text if text.startswith("_") else text


def _file_name(prefix: str, name: str, used: set[str], suffix: str = ".png") -> str:
    """A figure's file name from a database name: a safe charset only (no separator, no ``..``), never one in use.

    A name that had to be changed (or cut) gets a digest of itself, so two names that sanitise alike (``a/b``,
    ``a:b``) keep two files; ``used`` (lower case: file systems that ignore case) catches what remains.
    """
    stem = re.sub(r"[^A-Za-z0-9_-]+", "_", name)[:80]
    if stem != name:
        stem = f"{stem}-{hashlib.sha256(name.encode('utf-8', 'surrogatepass')).hexdigest()[:10]}"
    base, i = f"{prefix}{stem}", 1
    out = base
    while out.lower() in used:
        i += 1
        out = f"{base}-{i}"
    used.add(out.lower())
    return out + suffix


_MARKERS = ("o", "s", "^", "v", "D", "P", "X", "*", "<", ">", "h", "p")


def _variant_style(variants: list[str], variant: str) -> dict:
    """Dashed vanilla, solid variants; a marker per variant (colours tell the methods apart)."""
    i = variants.index(variant) if variant in variants else len(variants)
    return {"ls": "--" if variant == "vanilla" else "-", "marker": _MARKERS[i % len(_MARKERS)]}


def _legend_layout(methods: list[str], variants: list[str], width: float) -> tuple[list[str], int, int]:
    """The legend's labels, columns and rows: as many columns (up to 4) as the longest label lets fit."""
    labels = [_label(display(m)) for m in methods] + [_label(v) for v in variants]
    entry = 0.55 + 0.075 * max((len(x) for x in labels), default=1)  # inches: the handle, ~0.075 in a character
    ncol = max(1, min(4, len(labels), int(width // entry)))
    return labels, ncol, -(-len(labels) // ncol)


def _legend_below(fig: Figure, methods: list[str], variants: list[str]) -> None:
    """One legend under the panels: a colour per method, a line style per variant (not one entry per pair)."""
    from matplotlib.lines import Line2D

    handles = [Line2D([], [], color=f"C{i % 10}", lw=2) for i in range(len(methods))]
    handles += [Line2D([], [], color="0.4", markersize=4, **_variant_style(variants, v)) for v in variants]
    labels, ncol, rows = _legend_layout(methods, variants, fig.get_figwidth())
    fig.legend(handles, labels, loc="lower center", ncol=ncol, fontsize=9, frameon=False)
    height = fig.get_figheight()
    fig.tight_layout(rect=(0, min(0.7, (0.15 + 0.2 * rows) / height), 1, 1))


def _legend_height(methods: list[str], variants: list[str], width: float) -> float:
    """Inches the legend under a figure of ``width`` inches needs."""
    return 0.15 + 0.2 * _legend_layout(methods, variants, width)[2]


def _ordered(found: Iterable[str], order: list[str]) -> list[str]:
    """``found`` in the table's order, then the rest in order of appearance."""
    found = list(dict.fromkeys(found))
    return [x for x in order if x in found] + [x for x in found if x not in order]


def curve_plots(store: ResultStore, table: Table, run: Path) -> dict[str, Path]:
    """Median PIC curves (a figure per curve kind with curves): a colour per method, dashed vanilla, solid variants."""
    from ..viz import save_figure

    plt = _pyplot()
    out = {}
    for name in ("aic", "sic"):
        by_key: dict[tuple, list] = defaultdict(list)
        for _i, _u, method, variant, values in store.curves(name):
            if len(values):
                by_key[(method, variant)].append(np.asarray(values, dtype=float))
        by_key = {k: ys for k, ys in by_key.items() if len({len(y) for y in ys}) == 1}
        if not by_key:
            continue
        methods = _ordered((m for m, _ in by_key), table.methods)
        variants = _ordered((v for _, v in by_key), table.variants)
        fig, ax = plt.subplots(figsize=(5.5, 4.0 + _legend_height(methods, variants, 5.5)))
        for i, method in enumerate(methods):
            for v in variants:
                if (method, v) in by_key:
                    y = np.median(np.stack(by_key[(method, v)]), axis=0)
                    ax.plot(np.linspace(0, 1, len(y)), y, color=f"C{i % 10}", markevery=max(1, len(y) // 8),
                            markersize=4, lw=1.4, **_variant_style(variants, v))
        ax.set_xlabel("normalised information (WebP size)")
        ax.set_ylabel(f"{name.upper()} (median over images)")
        ax.grid(alpha=0.3)
        _legend_below(fig, methods, variants)
        out[f"curve_{name}"] = save_figure(fig, _fresh(run / f"curve_{name}.png"))[0]
    return out


def sanity_plot(store: ResultStore, table: Table, run: Path) -> dict[str, Path]:
    """The paper's Fig. 6, one legible panel per similarity with data, the legend under the panels.

    Each panel: the mean similarity to the original map against the fraction of randomised blocks (a colour per
    method, dashed vanilla, solid VAR variants), with bootstrap 95% error bars; each depth through the one
    aggregation (:func:`~attrdist.bench.results.aggregate`: a variant's mean over the maps vanilla could score).
    """
    from ..viz import save_figure

    plt = _pyplot()
    fraction: dict[str, float] = {}
    by_unit: dict[str, list] = defaultdict(list)
    for row in store.rows():
        if row[4] == "fraction":
            if row[5] is not None:
                fraction[row[1]] = row[5]
        else:
            by_unit[row[1]].append(row)
    points: dict[tuple[str, str, str], list[tuple[float, Cell]]] = defaultdict(list)
    for unit, rows in by_unit.items():
        if unit in fraction:
            for (method, variant, metric), c in aggregate(rows).cells.items():
                if math.isfinite(c.mean):
                    points[(metric, method, variant)].append((fraction[unit], c))
    metrics = sorted({k[0] for k in points}, key=_metric_key)
    if not metrics:
        return {}
    methods = _ordered((k[1] for k in points), table.methods)
    variants = _ordered((k[2] for k in points), table.variants)
    cols = min(3, len(metrics))
    rows_n = -(-len(metrics) // cols)
    height = 3.4 * rows_n + 0.3 + _legend_height(methods, variants, 4.2 * cols)
    fig, axes = plt.subplots(rows_n, cols, figsize=(4.2 * cols, height), squeeze=False)
    for ax, metric in zip(axes.flat, metrics, strict=False):
        for i, method in enumerate(methods):
            for variant in variants:
                pts = sorted(points.get((metric, method, variant), []), key=lambda p: p[0])
                if not pts:
                    continue
                ax.errorbar([x for x, _ in pts], [c.mean for _, c in pts], yerr=_yerr([c for _, c in pts]),
                            color=f"C{i % 10}", markersize=3, lw=1.4, capsize=2, elinewidth=0.8,
                            **_variant_style(variants, variant))
        title = _label(metric)
        ax.set_title(f"{title} (lower is better)" if not higher_is_better(metric) else title, fontsize=11)
        ax.set_xlabel("fraction of blocks randomised", fontsize=10)
        ax.set_ylabel("similarity to the original map", fontsize=10)
        ax.tick_params(labelsize=9)
        ax.set_ylim(-0.3, 1.05)
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(metrics):]:
        ax.axis("off")
    _legend_below(fig, methods, variants)
    return {"sanity": save_figure(fig, _fresh(run / "sanity.png"))[0]}


def _yerr(cells: list[Cell | None]) -> np.ndarray:
    """Error-bar lengths ``[2, n]`` below and above each mean, from its interval (none without one)."""
    err = np.array([[c.mean - c.mean_ci[0], c.mean_ci[1] - c.mean] if c else [np.nan, np.nan] for c in cells],
                   dtype=float).reshape(-1, 2).T
    return np.clip(np.nan_to_num(err, nan=0.0), 0.0, None)  # a mean just outside its interval: no negative bar


def bar_plots(store: ResultStore, t: Table, run: Path) -> dict[str, Path]:
    """One bar chart per metric with data: a group per method with data, a bar per variant, 95% error bars."""
    plt = _pyplot()
    out = {}
    used: set[str] = set()
    for metric in (m for m in t.metrics if not is_count(m)):  # counts are in the tables, not bars
        cells = {(m, v): c for (m, v, mt), c in t.cells.items() if mt == metric and math.isfinite(c.mean)}
        methods = [m for m in t.methods if any((m, v) in cells for v in t.variants)]
        variants = [v for v in t.variants if any((m, v) in cells for m in methods)]
        if not methods:
            continue
        fig, ax = plt.subplots(figsize=(1.6 + 1.1 * len(methods), 3.4))
        width = 0.8 / len(variants)
        xs = np.arange(len(methods))
        for i, v in enumerate(variants):
            got = [cells.get((m, v)) for m in methods]
            vals = np.array([c.mean if c else np.nan for c in got])
            ax.bar(xs + i * width - 0.4 + width / 2, vals, width, yerr=_yerr(got), capsize=2,
                   error_kw={"elinewidth": 0.8}, label=_label(v), color=f"C{i % 10}")
        ax.set_xticks(xs, [_label(display(m)) for m in methods], rotation=20, ha="right", fontsize=8)
        ax.set_ylabel(_label(metric) + ("" if higher_is_better(metric) else " (lower is better)"))
        ax.set_title("mean, bootstrap 95% interval", fontsize=8)
        ax.legend(fontsize=7)
        out[f"plot_{metric}"] = _save(fig, run / _file_name("plot_", metric, used))
    return out
