"""Figures: one map in one line (:func:`show`), and the paper-style figure of an explanation.

:func:`show` draws any result (a :class:`~attrdist.var.VARResult`, an :class:`~attrdist.methods.Attribution`
or a map) on a matplotlib axis, over the image if given, with a colour bar, in the spirit of Captum's
``visualize_image_attr``, pytorch-grad-cam's ``show_cam_on_image`` and Zennit's ``imgify``. Maps are never
scaled one by one: a row of maps shares one colour scale, so classes stay comparable.

Sign modes (``sign=``), for methods whose maps are signed (gradients, IxG, IG, LRP):

* ``"positive"``: the positive part on a sequential colour map (what the localisation metrics score);
* ``"absolute"``: ``|map|`` on a sequential colour map (the PIC benchmark's saliency);
* ``"diverging"``: a symmetric range on a diverging colour map (red positive, blue negative);
* ``"auto"``: diverging where a row has negative values, else positive.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Protocol, cast

import numpy as np

from ._lazy import lazy

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure, FigureBase
    from torch import Tensor

    from .explanation import Explanation

torch = lazy("torch")
plt = lazy("matplotlib.pyplot")
mcm = lazy("matplotlib.cm")
mcolors = lazy("matplotlib.colors")
mpatches = lazy("matplotlib.patches")

__all__ = [
    "CLASS_COLORS",
    "SIGNS",
    "dominance_image",
    "explanation_figure",
    "overlay",
    "row_scale",
    "save_figure",
    "show",
]


class _ClassMaps(Protocol):
    """What :func:`show` reads from a result: a :class:`~attrdist.var.VARResult` or an ``Attribution``."""

    @property
    def maps(self) -> Tensor: ...

    @property
    def classes(self) -> Tensor: ...

    @property
    def target(self) -> Tensor: ...


#: Colours of the classes of a set, in order (colour-blind-safe Okabe-Ito palette).
CLASS_COLORS = ["#E69F00", "#56B4E9", "#009E73", "#CC79A7", "#0072B2", "#D55E00", "#F0E442", "#000000"]

#: How signed maps are drawn (see the module docstring).
SIGNS = ("auto", "positive", "absolute", "diverging")

#: Figure formats :func:`save_figure` writes (PDF and SVG are vector formats).
FORMATS = ("png", "pdf", "svg")


def dominance_image(q: Tensor | np.ndarray, relative: bool = True) -> np.ndarray:
    """Colour each pixel by the class with the largest ``q``; its strength by how far ``q`` is above 1/K.

    Args:
        q: Class distribution ``[K, H, W]`` (``[K, C, H, W]`` per-channel distributions are averaged).
        relative: Scale the strength by the image's largest margin ``max_k q - 1/K`` (so that nearly
            uniform distributions, as from maps of small magnitude, stay visible); ``False`` scales by
            the largest possible margin ``1 - 1/K``.

    Returns:
        RGB float image ``[H, W, 3]`` in [0, 1]: white where the classes share a region (``q`` near
        uniform), saturated class colour where one class dominates.
    """
    q = np.asarray(q, dtype=np.float64)
    q = q.mean(1) if q.ndim == 4 else q
    k = q.shape[0]
    top = q.argmax(0)
    margin = q.max(0) - 1.0 / k
    peak = float(margin.max()) if relative else 1.0 - 1.0 / k
    strength = np.clip(margin / peak, 0.0, 1.0) if peak > 0 else np.zeros_like(margin)
    colors = np.array([mcolors.to_rgb(CLASS_COLORS[i % len(CLASS_COLORS)]) for i in range(k)])
    return 1.0 - strength[..., None] * (1.0 - colors[top])


def row_scale(maps: np.ndarray, sign: str = "auto") -> tuple[np.ndarray, float, float, str]:
    """Maps as drawn, and the colour range and map shared by a row of them.

    Args:
        maps: ``[K, H, W]`` (or any shape) maps of one row.
        sign: One of :data:`SIGNS`.

    Returns:
        ``(values, vmin, vmax, cmap)``; the range ignores the top 0.5% so that one hot pixel does not wash
        out the row.

    Raises:
        ValueError: On an unknown sign mode.
    """
    if sign not in SIGNS:
        raise ValueError(f"unknown sign mode {sign!r}; use one of {', '.join(SIGNS)}")
    maps = np.asarray(maps, dtype=np.float64)
    if sign == "auto":
        sign = "diverging" if (maps < 0).any() else "positive"
    if sign == "diverging":
        m = float(np.percentile(np.abs(maps), 99.5)) or float(np.abs(maps).max())
        return maps, -m, m, "bwr"
    values = np.abs(maps) if sign == "absolute" else np.clip(maps, 0, None)
    hi = float(np.percentile(values, 99.5)) or float(values.max())
    return values, 0.0, hi, "inferno"


def overlay(image: np.ndarray | None, heat: np.ndarray, vmin: float, vmax: float, cmap: str,
            alpha: float = 0.6) -> np.ndarray:
    """Blend a heat map (colour-mapped between ``vmin`` and ``vmax``) over a grey version of the image."""
    norm = np.clip((heat - vmin) / (vmax - vmin), 0, 1) if vmax > vmin else np.zeros_like(heat)
    coloured = plt.get_cmap(cmap)(norm)[..., :3]
    if image is None:
        return coloured
    grey = np.asarray(image).astype(np.float64).mean(-1, keepdims=True) / 255.0
    return (1 - alpha) * grey + alpha * coloured


def _colorbar(fig: FigureBase, ax: Axes, vmin: float, vmax: float, cmap: str, cax: Axes | None = None) -> None:
    mappable = mcm.ScalarMappable(mcolors.Normalize(vmin, vmax), cmap)
    bar = fig.colorbar(mappable, ax=None if cax is not None else ax, cax=cax, fraction=0.046, pad=0.02)
    bar.ax.tick_params(labelsize=7)
    bar.formatter.set_powerlimits((-2, 3))
    bar.update_ticks()


def _as_image(image: object) -> np.ndarray | None:
    if image is None:
        return None
    if isinstance(image, torch.Tensor):
        a = image.detach().cpu().numpy()
        a = a.transpose(1, 2, 0) if a.ndim == 3 and a.shape[0] in (1, 3) else a
        return (np.clip(a, 0, 1) * 255).astype(np.uint8) if a.dtype != np.uint8 else a
    return np.asarray(image)


def show(result: object, image: object = None, *, ax: Axes | None = None, which: str = "refined", sample: int = 0,
         class_id: int | None = None, sign: str = "auto", colorbar: bool = True, alpha: float = 0.6,
         title: str | None = None) -> Axes | Figure:
    """Draw one map of a result in one line.

    Args:
        result: A :class:`~attrdist.var.VARResult`, an :class:`~attrdist.methods.Attribution`, a map
            ``[H, W]`` (tensor or array), or an :class:`~attrdist.explanation.Explanation` (then the whole
            paper-style figure is drawn and returned).
        image: The RGB image the model saw (PIL, uint8 array, or a ``[3, H, W]`` tensor in [0, 1]) to draw the
            map over; ``None`` draws the map alone.
        ax: The axis to draw on (default: a new figure).
        which: ``"refined"`` (VAR) or ``"raw"`` (vanilla) map of a :class:`~attrdist.var.VARResult`.
        sample: The sample of the batch.
        class_id: The class whose map is drawn (default: the result's target).
        sign: One of :data:`SIGNS`.
        colorbar: Draw a colour bar.
        alpha: Opacity of the map over the image.
        title: Axis title (default: the method and the class id).

    Returns:
        The axis (the figure for an explanation).

    Raises:
        ValueError: On an unknown ``which``, a class outside the result's class set, or a map that is not 2-D.

    Example:
        >>> import torch
        >>> ax = show(torch.randn(8, 8), colorbar=False)
        >>> ax.images[0].get_array().shape
        (8, 8, 3)
    """
    draw = getattr(result, "figure", None)
    if callable(draw):  # an Explanation draws its own figure (viz does not import it: no import circle)
        return draw(sign=sign)
    name = ""
    if isinstance(result, torch.Tensor | np.ndarray):
        m = np.asarray(result.detach().cpu() if isinstance(result, torch.Tensor) else result, dtype=np.float64)
    else:
        if which not in ("refined", "raw"):
            raise ValueError(f"which must be 'refined' or 'raw', got {which!r}")
        res = cast(_ClassMaps, result)
        maps = getattr(res, "refined", None) if which == "refined" else None
        maps = res.maps if maps is None else maps
        classes = res.classes[sample].tolist()
        cid = int(res.target[sample]) if class_id is None else class_id
        if cid not in classes:
            raise ValueError(f"class {cid} is not in the result's class set {classes}")
        m = maps[sample, classes.index(cid)].detach().cpu().double().numpy()
        name = f"{getattr(result, 'method', '')} {'+ VAR ' if which == 'refined' and hasattr(result, 'q') else ''}"
        name = f"{name}(class {cid})"
    if m.ndim != 2:
        raise ValueError(f"show draws a 2-D map, got shape {m.shape}")
    values, lo, hi, cmap = row_scale(m, sign)
    if ax is None:
        _, ax = plt.subplots(figsize=(4, 4))
    ax.imshow(overlay(_as_image(image), values, lo, hi, cmap, alpha))
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(title if title is not None else name.strip(), fontsize=9)
    if colorbar:
        _colorbar(ax.figure, ax, lo, hi, cmap)
    return ax


def explanation_figure(exp: Explanation, *, cell: float = 2.2, sign: str = "auto", multiply_input: bool = False,
                       colorbar: bool = True, caption: bool = True) -> Figure:
    """The paper-style figure of an :class:`~attrdist.explanation.Explanation`.

    Columns: the image (and, below it, the class-dominance map of each method), then one column per
    class of the set, titled with its name and probability (the explained class is marked), and a colour
    bar per row. For each method, one row of vanilla maps and one row of VAR maps, each row on one colour
    scale shared by its K maps (so classes stay comparable; no map is scaled on its own). The configuration
    goes to the JSON record, not into the figure.

    Args:
        exp: The explanation.
        cell: Size of one panel in inches.
        sign: How signed maps are drawn (:data:`SIGNS`).
        multiply_input: Multiply the maps by the image's grey level for illustration.
        colorbar: A colour bar per row.
        caption: A line under the figure that explains the probabilities (those of a grid are low: each class
            fills part of the image).

    Returns:
        The matplotlib figure.
    """
    img = np.asarray(exp.image)
    k = len(exp.classes)
    rows = 2 * len(exp.results)
    width_ratios = [1.0] * (k + 1) + ([0.07] if colorbar else [])
    fig = plt.figure(figsize=(cell * (k + 1) + (1.0 if colorbar else 0.3), cell * rows + (1.0 if caption else 0.5)))
    grid = fig.add_gridspec(rows, len(width_ratios), width_ratios=width_ratios, wspace=0.06, hspace=0.12,
                            left=0.3 / fig.get_figwidth(), right=1 - (0.55 if colorbar else 0.05) / fig.get_figwidth(),
                            top=1 - 0.45 / fig.get_figheight(), bottom=(0.8 if caption else 0.35) / fig.get_figheight())
    grey = img.astype(np.float64).mean(-1) / 255.0
    target_col = exp.classes.index(exp.target)
    for m, (name, res) in enumerate(exp.results.items()):
        vanilla = res.maps[0].double().numpy()
        refined = res.refined[0].double().numpy()
        if multiply_input:
            vanilla, refined = vanilla * grey, refined * grey
        label = exp.display_names.get(name, name)
        for r, maps in enumerate((vanilla, refined)):
            row = 2 * m + r
            values, lo, hi, cmap = row_scale(maps, sign)
            for c in range(k):
                ax = fig.add_subplot(grid[row, c + 1])
                ax.imshow(overlay(img, values[c], lo, hi, cmap))
                ax.set_xticks([])
                ax.set_yticks([])
                color = CLASS_COLORS[c % len(CLASS_COLORS)]
                if row == 0:
                    star = " (target)" if c == target_col else ""
                    ax.set_title(f"{exp.class_names[c][:22]}{star}\np = {exp.probabilities[c]:.3f}", fontsize=9,
                                 color=color)
                for spine in ax.spines.values():
                    spine.set_edgecolor(color)
                    spine.set_linewidth(2)
                if r == 1 and not refined[c].any():  # a blank panel says why it is blank
                    ax.text(0.5, 0.5, "zeroed by VAR\n(no pixel where this\nclass dominates)", ha="center",
                            va="center", fontsize=8, color="#222222", transform=ax.transAxes,
                            bbox={"facecolor": "white", "alpha": 0.85, "edgecolor": "#999999", "pad": 3})
            if colorbar:
                _colorbar(fig, ax, lo, hi, cmap, cax=fig.add_subplot(grid[row, -1]))
        first, second = fig.add_subplot(grid[2 * m, 0]), fig.add_subplot(grid[2 * m + 1, 0])
        first.imshow(img)
        first.set_title("input" if m == 0 else "", fontsize=9)
        second.imshow(dominance_image(res.q[0].numpy()))
        second.set_title("class dominance", fontsize=8)
        for ax, row_label in ((first, label), (second, f"{label} + VAR")):
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_ylabel(row_label, fontsize=10)
    handles = [mpatches.Patch(color=CLASS_COLORS[c % len(CLASS_COLORS)], label=exp.class_names[c]) for c in range(k)]
    fig.legend(handles=handles, loc="lower center", ncol=min(k, 4), fontsize=8, frameon=False,
               bbox_to_anchor=(0.5, (0.3 if caption else 0.0) / fig.get_figheight()))
    if caption:
        import textwrap

        width = max(40, int(fig.get_figwidth() * 14))  # characters of 7-pt text per line
        fig.text(0.5, 0.06 / fig.get_figheight(), "\n".join(textwrap.wrap(exp.caption(), width)), ha="center",
                 va="bottom", fontsize=7, color="#444444")
    return fig


def save_figure(fig: Figure, *paths: str | Path, dpi: int = 200) -> list[Path]:
    """Write a figure to each path (PNG at ``dpi``; PDF and SVG as vector graphics), then close it.

    Raises:
        ValueError: On a format other than PNG, PDF or SVG.
    """
    out = [Path(p) for p in paths]
    bad = [p.suffix for p in out if p.suffix.lstrip(".").lower() not in FORMATS]
    try:
        if bad:
            raise ValueError(f"unknown figure format(s) {bad}; use {', '.join(FORMATS)}")
        for path in out:
            fig.savefig(path, dpi=dpi, format=path.suffix.lstrip(".").lower())
    finally:
        plt.close(fig)
    return out
