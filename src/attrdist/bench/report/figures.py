"""The report's figures: bar charts of each metric, median insertion curves, and the sanity check's Fig. 6.

Drawn without pyplot (no backend is chosen or switched: a notebook keeps its own; nothing stays open); names from
the database become literal figure text and safe file names.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..records import FRACTION, unit_values
from ..results import Cell, aggregate, is_count
from ..store import ResultStore
from .tables import Table, display, higher_is_better, metric_key, plain

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["bar_plots", "curve_plots", "frontier_plot", "sanity_plot"]


class _Figures:
    """Figures without pyplot: no backend is chosen or switched (a notebook keeps its own), nothing stays open."""

    @staticmethod
    def subplots(nrows: int = 1, ncols: int = 1, *, figsize: tuple[float, float],
                 squeeze: bool = True) -> tuple[Figure, Any]:
        from matplotlib.figure import Figure

        fig = Figure(figsize=figsize)
        return fig, fig.subplots(nrows, ncols, squeeze=squeeze)


def _pyplot() -> _Figures:
    """What the report's figures are drawn with (matplotlib imported only when a report is drawn)."""
    return _Figures()


#: A report's bounded cost (a results database may come from anyone): methods per chart (a group of bars, a
#: colour of curves), variants per chart, pixels per figure and figures per report. Beyond a cap the figure is
#: a one-line note (the report's tables still hold every number).
MAX_METHODS_PER_CHART = 40
MAX_VARIANTS_PER_CHART = 12
MAX_MEGAPIXELS = 20.0
MAX_FIGURES = 12
_DPI = 200


def _save(fig: Figure, path: Path, layout: bool = True) -> Path:
    """Lay out (unless done), write (PNG, 200 dpi) and close a figure; a note instead beyond the pixel cap."""
    from ...viz import save_figure

    width, height = fig.get_size_inches()
    megapixels = width * height * _DPI**2 / 1e6
    if megapixels > MAX_MEGAPIXELS:
        return _note(path, f"not drawn: {megapixels:.0f} megapixels, more than {MAX_MEGAPIXELS:g}; see the tables")
    if layout:
        fig.tight_layout()
    return save_figure(fig, path, dpi=_DPI)[0]


def _note(path: Path, text: str) -> Path:
    """A small figure holding one line of text, in place of a figure the caps did not let draw."""
    from ...viz import save_figure

    fig, ax = _pyplot().subplots(figsize=(6.4, 0.6))
    ax.axis("off")
    ax.text(0.0, 0.5, _label(f"{path.stem}: {text}", limit=110), fontsize=9, va="center")
    return save_figure(fig, path, dpi=100)[0]


def _too_many(methods: list[str], variants: list[str]) -> str | None:
    """Why a chart of ``methods`` x ``variants`` is not drawn (more than the caps), or ``None``."""
    if len(methods) > MAX_METHODS_PER_CHART:
        return f"not drawn: {len(methods)} methods, more than {MAX_METHODS_PER_CHART} per chart; see the tables"
    if len(variants) > MAX_VARIANTS_PER_CHART:
        return f"not drawn: {len(variants)} variants, more than {MAX_VARIANTS_PER_CHART} per chart; see the tables"
    return None


def _label(value: object, limit: int = 48) -> str:
    """A name as figure text: literal (no mathtext from ``$``), shown in legends (no leading ``_``), not too long."""
    text = plain(value)
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
    plt = _pyplot()
    out = {}
    for name in ("aic", "sic"):
        by_key: dict[tuple, list] = defaultdict(list)
        for c in store.curves(name):
            if len(c.values):
                by_key[(c.method, c.variant)].append(np.asarray(c.values, dtype=float))
        by_key = {k: ys for k, ys in by_key.items() if len({len(y) for y in ys}) == 1}
        if not by_key:
            continue
        methods = _ordered((m for m, _ in by_key), table.methods)
        variants = _ordered((v for _, v in by_key), table.variants)
        reason = _too_many(methods, variants)
        if reason:
            out[f"curve_{name}"] = _note(run / f"curve_{name}.png", reason)
            continue
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
        out[f"curve_{name}"] = _save(fig, run / f"curve_{name}.png", layout=False)
    return out


def sanity_plot(store: ResultStore, table: Table, run: Path) -> dict[str, Path]:
    """The paper's Fig. 6, one legible panel per similarity with data, the legend under the panels.

    Each panel: the mean similarity to the original map against the fraction of randomised blocks (a colour per
    method, dashed vanilla, solid VAR variants), with bootstrap 95% error bars; each depth through the one
    aggregation (:func:`~attrdist.bench.results.aggregate`: a variant's mean over the maps vanilla could score).
    """
    plt = _pyplot()
    fraction = unit_values(store.unit_attributes(), FRACTION)
    scores, maps = store.scores(), store.maps()
    points: dict[tuple[str, str, str], list[tuple[float, Cell]]] = defaultdict(list)
    for unit, f in fraction.items():
        agg = aggregate([s for s in scores if s.unit == unit], [m for m in maps if m.unit == unit])
        for (method, variant, metric), c in agg.cells.items():
            if math.isfinite(c.mean):
                points[(metric, method, variant)].append((f, c))
    metrics = sorted({k[0] for k in points}, key=metric_key)
    if not metrics:
        return {}
    methods = _ordered((k[1] for k in points), table.methods)
    variants = _ordered((k[2] for k in points), table.variants)
    reason = _too_many(methods, variants) or (f"not drawn: {len(metrics)} similarities, more than {MAX_FIGURES} "
                                              "panels; see the tables" if len(metrics) > MAX_FIGURES else None)
    if reason:
        return {"sanity": _note(run / "sanity.png", reason)}
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
    return {"sanity": _save(fig, run / "sanity.png", layout=False)}


def _yerr(cells: list[Cell | None]) -> np.ndarray:
    """Error-bar lengths ``[2, n]`` below and above each mean, from its interval (none without one)."""
    err = np.array([[c.mean - c.mean_ci[0], c.mean_ci[1] - c.mean] if c else [np.nan, np.nan] for c in cells],
                   dtype=float).reshape(-1, 2).T
    return np.clip(np.nan_to_num(err, nan=0.0), 0.0, None)  # a mean just outside its interval: no negative bar


def bar_plots(store: ResultStore, t: Table, run: Path) -> dict[str, Path]:
    """One bar chart per metric with data: a group per method with data, a bar per variant, 95% error bars."""
    plt = _pyplot()
    out: dict[str, Path] = {}
    used: set[str] = set()
    metrics = [m for m in t.metrics if not is_count(m)]  # counts are in the tables, not bars
    for metric in metrics:
        cells = {(m, v): c for (m, v, mt), c in t.cells.items() if mt == metric and math.isfinite(c.mean)}
        methods = [m for m in t.methods if any((m, v) in cells for v in t.variants)]
        variants = [v for v in t.variants if any((m, v) in cells for m in methods)]
        if not methods:
            continue
        if len(out) == MAX_FIGURES:
            rest = len(metrics) - metrics.index(metric)
            out["plot_more"] = _note(run / _file_name("plot_", "more", used), f"{rest} more metrics not drawn (at "
                                     f"most {MAX_FIGURES} figures per report); see the tables")
            break
        path = run / _file_name("plot_", metric, used)
        reason = _too_many(methods, variants)
        if reason:
            out[f"plot_{metric}"] = _note(path, reason)
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
        out[f"plot_{metric}"] = _save(fig, path)
    return out


def frontier_plot(ranking: list[tuple[str, bool, float, int]], path: Path) -> Path:
    """The variant study's frontier: mean RA change against maps unscorable, per candidate (green: eligible).

    Args:
        ranking: ``(variant, eligible, mean RA change, maps unscorable)`` per candidate.
        path: The PNG to write.
    """
    fig, ax = _pyplot().subplots(figsize=(6, 4))
    for variant, eligible, ra, dead in ranking:
        ax.scatter(dead, ra, color="C2" if eligible else "C3")
        ax.annotate(variant, (dead, ra), fontsize=6, xytext=(3, 2), textcoords="offset points")
    ax.set_xlabel("maps unscorable (all benchmarks)")
    ax.set_ylabel("mean relative RA change (%), paired")
    ax.set_xscale("symlog")
    return _save(fig, Path(path))
