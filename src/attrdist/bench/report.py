"""Reports of benchmark runs: the paper's table layout as Markdown, LaTeX and CSV, plus each benchmark's plots.

For each method and metric: the vanilla mean, the mean of each VAR variant and its relative change against
vanilla, marked better or worse by the metric's registered direction (a falling sanity similarity or
deletion AUC is an improvement), with its bootstrap 95% interval; an average-change row over methods. A
variant is compared with vanilla on the maps both could score (:mod:`~attrdist.bench.results`); maps that
cannot be scored (``zeroed``: all zero, constant or non-finite) are counted, never averaged. The benchmark's
registry entry names the unit its table summarises and draws its figures.
"""

from __future__ import annotations

import csv
import math
import re
import sqlite3
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..metrics import METRICS
from ..metrics.insertion import PicCurve, aggregate_curves
from .results import UNSCORABLE, Cell, aggregate, is_count, relative
from .store import ResultStore

__all__ = ["Table", "bar_plots", "curve_plots", "markdown", "sanity_plot", "summarize", "variant_summary",
           "write_report"]

#: Order of the metric columns: by task, then registration order; unknown metrics last.
_TASK_ORDER = ("localization", "insertion", "similarity", "count")


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
        cells: ``(method, variant, metric) -> Cell``: paired means, changes and intervals.
        counts: ``(method, variant, count metric) -> (maps counted, maps)``.
        items: Items with results.
        skipped: ``(item, reason)`` of the recorded skips.
    """

    methods: list[str]
    variants: list[str]
    metrics: list[str]
    cells: dict[tuple[str, str, str], Cell]
    counts: dict[tuple[str, str, str], tuple[int, int]]
    items: int
    skipped: list[tuple[str, str]]

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


def summarize(store: ResultStore, unit: str | None = None, bootstrap: int = 2000) -> Table:
    """Aggregate the store's rows (of one unit only, if given), plus the AUCs of median curves.

    Args:
        store: An open results store.
        unit: Only rows of this unit (``None``: every unit).
        bootstrap: Resamples of the intervals.

    Returns:
        The :class:`Table`.
    """
    rows = [r for r in store.rows() if (unit is None or r[1] == unit) and r[4] != "fraction"]
    agg = aggregate(rows, bootstrap=bootstrap)
    # one AUC per median curve, no items to resample: its change gets no interval (not a zero-width one)
    medians = aggregate(_median_curve_rows(store), bootstrap=0)
    cfg = store.config()
    cfg_methods, cfg_variants = cfg.get("methods", []), list(cfg.get("variants", {}))
    methods = [m for m in cfg_methods if m in agg.methods] + [m for m in agg.methods if m not in cfg_methods]
    variants = ["vanilla"] + [v for v in cfg_variants if v in agg.variants] + [
        v for v in agg.variants if v != "vanilla" and v not in cfg_variants]
    count_metrics = list(dict.fromkeys(k[2] for k in agg.counts))
    metrics = sorted(agg.metrics + medians.metrics + count_metrics, key=_metric_key)
    return Table(methods, variants, metrics, {**agg.cells, **medians.cells}, agg.counts, agg.items,
                 store.skipped())


def _fmt(v: float) -> str:
    return "-" if math.isnan(v) else f"{v:.3f}"


def _change(t: Table, method: str, variant: str, metric: str) -> str:
    c = t.change(method, variant, metric)
    if math.isnan(c):
        return "-"
    verdict = "better" if t.improves(method, variant, metric) else ("same" if c == 0 else "worse")
    lo, hi = t.cells[(method, variant, metric)].ci
    unit = "%" if relative(metric) else ""
    digits = ".1f" if relative(metric) else ".3f"
    ci = "" if math.isnan(lo) else f" [{lo:+{digits}}, {hi:+{digits}}]"
    return f"{c:+{digits}}{unit}{ci}, {verdict}"


def _header(metric: str, variant: str) -> str:
    arrow = "" if is_count(metric) or higher_is_better(metric) else ", lower is better"
    return f"{metric} ({variant}{arrow})"


def _rows(t: Table) -> tuple[list[str], list[list[str]]]:
    header = ["method"] + [_header(m, v) for m in t.metrics for v in t.variants]
    body = []
    for method in t.methods:
        row = [method]
        for metric in t.metrics:
            for v in t.variants:
                key = (method, v, metric)
                if is_count(metric):  # how many maps could not be scored, out of how many
                    row.append(f"{t.counts[key][0]}/{t.counts[key][1]}" if key in t.counts else "-")
                    continue
                val = _fmt(t.mean.get(key, math.nan))
                row.append(val if v == "vanilla" else f"{val} ({_change(t, method, v, metric)})")
        body.append(row)
    avg = ["average change"]
    for metric in t.metrics:
        for v in t.variants:
            if is_count(metric):
                total = sum(n for k, (n, _) in t.counts.items() if k[1] == v and k[2] == metric)
                avg.append(f"{total} in all")
                continue
            changes = [c for c in (t.change(m, v, metric) for m in t.methods) if not math.isnan(c)]
            if v == "vanilla" or not changes:
                avg.append("" if v == "vanilla" else "-")
                continue
            mean = sum(changes) / len(changes)
            better = mean > 0 if higher_is_better(metric) else mean < 0
            text = f"{mean:+.1f}%" if relative(metric) else f"{mean:+.3f}"
            avg.append(f"{text}, {'better' if better else 'worse'}")
    body.append(avg)
    return header, body


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


def markdown(t: Table) -> str:
    """The table as Markdown (value with VAR, its relative change against vanilla, better or worse)."""
    header, body = _rows(t)
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in body]
    if len(t.variants) > 2 and "region_attribution" in t.metrics:
        n = len(t.methods)
        lines += ["", "| variant | methods improved: region attribution | IoU | F1 | mean change (RA) | maps zeroed |",
                  "|---|---|---|---|---|---|"]
        for r in variant_summary(t):
            lines.append(f"| {r['variant']} | {r['region_attribution']}/{n} | {r['iou']}/{n} | {r['f1']}/{n} | "
                         f"{'-' if math.isnan(r['mean_change']) else format(r['mean_change'], '+.1f') + '%'} | "
                         f"{r['zeroed']} |")
    note = ("\nEach variant is compared with vanilla on the maps both could score (paired means; vanilla's column: all "
            "its scorable maps); [low, high]: bootstrap 95% interval of the change over items; zeroed: maps that could "
            "not be scored (all zero, constant or non-finite), never averaged.\n"
            f"{t.items} items; {len(t.skipped)} skips recorded (item or item/curve or item/map)." + (
                "" if not t.skipped else " Skipped: " + "; ".join(f"{i} ({r})" for i, r in t.skipped[:10])))
    return "\n".join(lines) + "\n" + note + "\n"


def latex(t: Table) -> str:
    """The table as a LaTeX tabular."""
    header, body = _rows(t)

    def esc(text: str) -> str:
        return text.replace("_", r"\_").replace("%", r"\%")

    out = [r"\begin{tabular}{l" + "r" * (len(header) - 1) + "}", r"\toprule", " & ".join(map(esc, header)) + r" \\",
           r"\midrule"]
    out += [" & ".join(map(esc, r)) + r" \\" for r in body]
    out += [r"\bottomrule", r"\end{tabular}"]
    return "\n".join(out) + "\n"


def write_report(run_dir: str | Path) -> dict[str, Path]:
    """Write ``report.md``, ``report.tex``, ``report.csv`` and the benchmark's figures into ``run_dir``.

    Args:
        run_dir: A run folder with ``results.sqlite``.

    Returns:
        The written files by kind.

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
    except sqlite3.DatabaseError as err:
        raise ValueError(f"{db}: not a readable results database ({err})") from None
    written = {"markdown": _fresh(run / "report.md"), "latex": _fresh(run / "report.tex"),
               "csv": _fresh(run / "report.csv")}
    written["markdown"].write_text(markdown(t))
    written["latex"].write_text(latex(t))
    with written["csv"].open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["method", "variant", "metric", "mean", "maps", "vanilla_mean_same_maps", "change",
                    "change_unit", "ci_low", "ci_high", "unscorable_maps", "higher_is_better"])
        for m in t.methods:
            for v in t.variants:
                for metric in t.metrics:
                    c = t.cells.get((m, v, metric))
                    if c is None:
                        continue
                    ci = ("", "") if v == "vanilla" else c.ci
                    w.writerow([m, v, metric, c.mean, c.n, c.base, "" if v == "vanilla" else c.change,
                                "percent" if relative(metric) else "difference", *ci, t.unscorable(m, v)[0],
                                higher_is_better(metric)])
    written.update(figures)
    return written


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


def _save(fig: object, path: Path) -> Path:
    """Lay out, write (PNG, 200 dpi) and close a figure."""
    from ..viz import save_figure

    fig.tight_layout()  # type: ignore[attr-defined]
    return save_figure(fig, _fresh(path))[0]  # type: ignore[arg-type]


def curve_plots(store: ResultStore, table: Table, run: Path) -> dict[str, Path]:
    """Median PIC curves per method: dashed vanilla, solid VAR variants."""
    plt = _pyplot()
    out = {}
    for name in ("aic", "sic"):
        by_key: dict[tuple, list] = defaultdict(list)
        for _i, _u, method, variant, values in store.curves(name):
            by_key[(method, variant)].append(np.asarray(values))
        if not by_key:
            continue
        fig, ax = plt.subplots(figsize=(5, 4))
        methods = sorted({m for m, _ in by_key})
        for i, method in enumerate(methods):
            for (m, v), ys in sorted(by_key.items()):
                if m == method:
                    y = np.median(np.stack(ys), axis=0)
                    ax.plot(np.linspace(0, 1, len(y)), y, color=f"C{i}", ls="--" if v == "vanilla" else "-",
                            label=f"{display(m)} ({v})")
        ax.set_xlabel("normalised information (WebP size)")
        ax.set_ylabel(f"{name.upper()} (median over images)")
        ax.legend(fontsize=6)
        out[f"curve_{name}"] = _save(fig, run / f"curve_{name}.png")
    return out


def sanity_plot(store: ResultStore, table: Table, run: Path) -> dict[str, Path]:
    """The paper's Fig. 6, one legible panel per similarity, the legend under the panels.

    Each panel: the mean similarity to the original map against the fraction of randomised blocks (dashed
    vanilla, solid VAR variants).
    """
    plt = _pyplot()
    values: dict[tuple, list] = defaultdict(list)
    fraction: dict[str, float] = {}
    for _item, unit, method, variant, metric, value in store.rows():
        if metric == "fraction":
            fraction[unit] = value
        elif not is_count(metric):
            values[(metric, method, variant, unit)].append(value)
    metrics = sorted({k[0] for k in values}, key=_metric_key)
    methods = list(dict.fromkeys(k[1] for k in values))
    cols = min(3, len(metrics))
    rows = -(-len(metrics) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.4 * rows + 0.9), squeeze=False)
    for ax, metric in zip(axes.flat, metrics, strict=False):
        for i, method in enumerate(methods):
            for variant in sorted({k[2] for k in values if k[1] == method}):
                units = sorted(u for (mt, me, va, u) in values if (mt, me, va) == (metric, method, variant))
                xs = [fraction[u] for u in units]
                ys = [float(np.mean(values[(metric, method, variant, u)])) for u in units]
                ax.plot(xs, ys, color=f"C{i}", ls="--" if variant == "vanilla" else "-", marker="o", markersize=3,
                        lw=1.6, label=f"{display(method)} ({variant})")
        ax.set_title(f"{metric} (lower is better)" if not higher_is_better(metric) else metric, fontsize=11)
        ax.set_xlabel("fraction of blocks randomised", fontsize=10)
        ax.set_ylabel("similarity to the original map", fontsize=10)
        ax.tick_params(labelsize=9)
        ax.set_ylim(-0.3, 1.05)
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(metrics):]:
        ax.axis("off")
    handles, labels = axes.flat[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=min(4, len(labels)), fontsize=9, frameon=False)
    legend_rows = -(-len(labels) // min(4, max(1, len(labels))))
    fig.tight_layout(rect=(0, (0.2 + 0.22 * legend_rows) / fig.get_figheight(), 1, 1))
    from ..viz import save_figure

    return {"sanity": save_figure(fig, _fresh(run / "sanity.png"))[0]}


def bar_plots(store: ResultStore, t: Table, run: Path) -> dict[str, Path]:
    """One bar chart per metric: methods on the x-axis, a bar per variant."""
    plt = _pyplot()
    out = {}
    for metric in (m for m in t.metrics if not is_count(m)):  # counts are in the tables, not bars
        fig, ax = plt.subplots(figsize=(1.2 + 1.1 * len(t.methods), 3.2))
        width = 0.8 / len(t.variants)
        xs = np.arange(len(t.methods))
        for i, v in enumerate(t.variants):
            vals = [t.mean.get((m, v, metric), np.nan) for m in t.methods]
            ax.bar(xs + i * width - 0.4 + width / 2, vals, width, label=v)
        ax.set_xticks(xs, [display(m) for m in t.methods], rotation=20, ha="right", fontsize=8)
        ax.set_ylabel(metric)
        ax.legend(fontsize=7)
        safe = re.sub(r"[^A-Za-z0-9_.-]", "_", metric).lstrip(".")  # metric names come from the database
        out[f"plot_{metric}"] = _save(fig, run / f"plot_{safe}.png")
    return out
