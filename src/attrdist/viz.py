"""Figures: one map in one line (:func:`show`), the paper-style figure of an explanation, and notebook pictures.

:func:`show` draws any result (a :class:`~attrdist.var.VARResult`, an :class:`~attrdist.methods.Attribution`
or a map) over the image if given, with a colour bar, in the spirit of Captum's ``visualize_image_attr``,
pytorch-grad-cam's ``show_cam_on_image`` and Zennit's ``imgify``, and returns the figure: Jupyter shows it below
the cell, a script opens it where matplotlib's backend is interactive. Maps are never scaled one by one: a row
of maps shares one colour scale, so classes stay comparable. Nothing here chooses a matplotlib backend.

Results and explanations draw themselves in Jupyter (their ``_repr_png_`` calls :func:`result_png` or
:func:`figure_png`). A class has one colour wherever it appears (:func:`class_colors`: a function of its id).

Sign modes (``sign=``), for methods whose maps are signed (gradients, IxG, IG, LRP):

* ``"positive"``: the positive part on a sequential colour map (what the localisation metrics score);
* ``"absolute"``: ``|map|`` on a sequential colour map (the PIC benchmark's saliency);
* ``"diverging"``: a symmetric range on a diverging colour map (red positive, blue negative);
* ``"auto"``: diverging where a row has negative values, else positive.
"""

from __future__ import annotations

import io
import math
import sys
import textwrap
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeAlias, TypedDict, cast, runtime_checkable

import matplotlib
import matplotlib.cm as mcm
import matplotlib.colors as mcolors
import matplotlib.patches as mpatches
import matplotlib.pyplot as plt
import numpy as np
import torch

from ._files import atomic_open
from .classes import class_id
from .explain_config import FORMATS, SIGNS

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure, FigureBase
    from matplotlib.ticker import ScalarFormatter
    from PIL import Image
    from torch import Tensor


__all__ = [
    "CLASS_COLORS",
    "MIN_FONT_PT",
    "ClassMaps",
    "FigureOptions",
    "ImageLike",
    "ExplanationLike",
    "RefinedMaps",
    "ResultLike",
    "SIGNS",
    "class_colors",
    "dominance_image",
    "explanation_figure",
    "figure_png",
    "overlay",
    "result_figure",
    "result_png",
    "row_scale",
    "save_figure",
    "show",
]


@runtime_checkable
class ClassMaps(Protocol):
    """What :func:`show` reads from a result: a :class:`~attrdist.var.VARResult` or an ``Attribution``."""

    @property
    def maps(self) -> Tensor:
        """Raw maps ``[B, K, H, W]``."""

    @property
    def classes(self) -> Tensor:
        """The class set ``[B, K]``."""

    @property
    def target(self) -> Tensor:
        """The explained class ``[B]``."""


#: An image to draw maps over: PIL, a uint8 array ``[H, W, 3]``, a ``[3, H, W]`` tensor in [0, 1], or none.
ImageLike: TypeAlias = "Image.Image | np.ndarray | Tensor | None"


class FigureOptions(TypedDict, total=False):
    """The options of :func:`explanation_figure` (``Explanation.figure(**options)`` and ``save`` pass them on)."""

    cell: float
    width: float | None
    sign: str
    multiply_input: bool
    colorbar: bool
    caption: bool


#: The class colours (colour-blind-safe Okabe-Ito palette); :func:`class_colors` picks a class's colour by its id.
CLASS_COLORS = ["#E69F00", "#56B4E9", "#009E73", "#CC79A7", "#0072B2", "#D55E00", "#F0E442", "#000000"]


#: The smallest font of every figure, in points at the figure's own size (a paper's smallest legible print).
MIN_FONT_PT = 7.0

# the average glyph width of matplotlib's default font (DejaVu Sans), in ems: fits text to a length before drawing
_EM = 0.57


def class_colors(classes: Sequence[int]) -> list[str]:
    """One colour per class id, the same in every figure, for every target, and in the explorer.

    A class's colour is ``CLASS_COLORS[id % 8]``; where two classes of one set would share a colour, the larger id
    takes the next free one. The colours depend on the set's ids only (not on their order or on the target), and
    the classes of a set of at most eight have distinct colours.

    Args:
        classes: Class ids of a set.

    Returns:
        A colour (hex string) per class, in the order given.

    Example:
        >>> class_colors([285, 281]) == class_colors([281, 285])[::-1]
        True
    """
    n = len(CLASS_COLORS)
    slots: dict[int, int] = {}
    for c in sorted(set(int(c) for c in classes)):
        slot = c % n
        while slot in slots.values() and len(slots) < n:
            slot = (slot + 1) % n
        slots[c] = slot
    return [CLASS_COLORS[slots[int(c)]] for c in classes]


def dominance_image(q: Tensor | np.ndarray, relative: bool = True, classes: Sequence[int] | None = None) -> np.ndarray:
    """Colour each pixel by the class with the largest ``q``; its strength by how far ``q`` is above 1/K.

    Args:
        q: Class distribution ``[K, H, W]`` (``[K, C, H, W]`` per-channel distributions are averaged).
        relative: Scale the strength by the image's largest margin ``max_k q - 1/K`` (so that nearly
            uniform distributions, as from maps of small magnitude, stay visible); ``False`` scales by
            the largest possible margin ``1 - 1/K``.
        classes: The class ids of the K classes: each is drawn in its own colour (:func:`class_colors`); ``None``
            colours the classes by position.

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
    names = class_colors(classes) if classes is not None else [CLASS_COLORS[i % len(CLASS_COLORS)] for i in range(k)]
    colors = np.array([mcolors.to_rgb(c) for c in names])
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


def _colorbar(fig: FigureBase, ax: Axes, vmin: float, vmax: float, cmap: str, cax: Axes | None = None,
              label: str = "", size: float = MIN_FONT_PT) -> None:
    mappable = mcm.ScalarMappable(mcolors.Normalize(vmin, vmax), cmap)
    bar = fig.colorbar(mappable, ax=None if cax is not None else ax, cax=cax, fraction=0.046, pad=0.02)
    bar.ax.tick_params(labelsize=size, length=2, pad=1.5)
    cast("ScalarFormatter", bar.formatter).set_powerlimits((-2, 3))
    bar.update_ticks()
    bar.ax.yaxis.get_offset_text().set_fontsize(size)
    if label:
        bar.set_label(label, fontsize=size, labelpad=2)


def _bar_label(sign: str, maps: np.ndarray, refined: bool, length_in: float, size: float = MIN_FONT_PT) -> str:
    """What a row's colour bar shows, in words that fit along it (two lines at most)."""
    if sign == "auto":
        sign = "diverging" if (maps < 0).any() else "positive"
    kind = "VAR map" if refined else "raw map"
    long = {"positive": f"{kind}, positive part", "absolute": f"|{kind}|", "diverging": f"{kind}, signed"}[sign]
    short = {"positive": f"{kind.split()[0]} > 0", "absolute": f"|{kind.split()[0]}|",
             "diverging": f"{kind.split()[0]} ±"}[sign]
    for text in (long, short):
        if len(_lines(text, length_in, size)) <= 2:
            return _fit(text, length_in, size, 2)
    return _fit(short, length_in, size, 2)


def _chars(length_in: float, size: float) -> int:
    """How many characters of ``size``-point text fit into ``length_in`` inches."""
    return max(3, int(length_in * 72 / (_EM * size)))


def _lines(text: str, length_in: float, size: float) -> list[str]:
    return textwrap.wrap(text, _chars(length_in, size), break_long_words=False) or [""]


def _fit(text: str, length_in: float, size: float, lines: int = 1) -> str:
    """``text`` wrapped to lines of ``length_in`` inches, at most ``lines`` of them; what does not fit ends in '…'."""
    n = _chars(length_in, size)
    out = _lines(text, length_in, size)
    cut = len(out) > lines
    out = [line if len(line) <= n else line[: n - 1] + "…" for line in out[:lines]]
    if cut and not out[-1].endswith("…"):
        out[-1] = out[-1][: n - 1].rstrip() + "…"
    return "\n".join(out)


def _as_image(image: ImageLike) -> np.ndarray | None:
    if image is None:
        return None
    if isinstance(image, torch.Tensor):
        a = image.detach().cpu().numpy()
        a = a.transpose(1, 2, 0) if a.ndim == 3 and a.shape[0] in (1, 3) else a
        return (np.clip(a, 0, 1) * 255).astype(np.uint8) if a.dtype != np.uint8 else a
    return np.asarray(image)


def _jupyter() -> Any:
    """The running Jupyter kernel's shell, else ``None`` (IPython is never imported here: only looked up)."""
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None and hasattr(ipython, "get_ipython") else None
    return shell if getattr(shell, "kernel", None) is not None else None


def _interactive_backend(name: str) -> bool:
    """Whether the matplotlib backend ``name`` opens windows (``tkagg``, ``qtagg``, ``macosx``; not ``agg``)."""
    try:
        from matplotlib.backends import BackendFilter, backend_registry

        interactive = backend_registry.list_builtin(BackendFilter.INTERACTIVE)
    except ImportError:  # matplotlib < 3.9
        from matplotlib import rcsetup

        interactive = list(getattr(rcsetup, "interactive_bk", []))
    return name.lower() in {b.lower() for b in interactive}


def _class_map(result: ClassMaps, which: str, sample: int, query: int | str | None) -> tuple[np.ndarray, str]:
    """One class's map of a result (by id or name, default the target) and its title."""
    if which not in ("refined", "raw"):
        raise ValueError(f"which must be 'refined' or 'raw', got {which!r}")
    maps = getattr(result, "refined", None) if which == "refined" else None  # an Attribution has raw maps only
    maps = result.maps if maps is None else maps
    classes = result.classes[sample].tolist()
    labels: Sequence[str] | None = getattr(result, "label_set", None)
    if query is None:
        cid = int(result.target[sample])
    elif labels is not None:
        cid = class_id(query, labels)
    else:
        try:
            cid = int(query)
        except ValueError:
            raise ValueError(f"class {query!r}: this result has no class names; give a class id") from None
    if cid not in classes:
        raise ValueError(f"class {cid} is not in the result's class set {classes}")
    label = f"{labels[cid]} ({cid})" if labels is not None else f"class {cid}"
    var = "+ VAR " if which == "refined" and hasattr(result, "q") else ""
    title = f"{getattr(result, 'method', '')} {var}{label}"
    return maps[sample, classes.index(cid)].detach().cpu().double().numpy(), title


@dataclass
class _ShownOnce:
    """A figure :func:`show` displayed in a Jupyter cell is not displayed again as that cell's value."""

    figure: Figure
    cell: int

    def __call__(self) -> None:
        from IPython.display import display

        del vars(self.figure)["_ipython_display_"]  # from now on the figure displays as any figure does
        shell = _jupyter()
        if shell is None or shell.execution_count != self.cell:
            display(self.figure)


def _display(fig: Figure) -> None:
    """Show a figure: below the cell in Jupyter; in a window where the backend is interactive; else not at all."""
    shell = _jupyter()
    if shell is not None:
        from IPython.display import display

        display(fig)
        plt.close(fig)  # the inline backend would show it a second time at the end of the cell
        vars(fig)["_ipython_display_"] = _ShownOnce(fig, shell.execution_count)
    elif _interactive_backend(str(matplotlib.get_backend())):
        plt.show()


def figure_png(fig: Figure, dpi: int = 100) -> bytes:
    """A figure as PNG bytes (what Jupyter shows), then closed.

    Example:
        >>> figure_png(show(torch.zeros(4, 4), display=False))[1:4]
        b'PNG'
    """
    buffer = io.BytesIO()
    try:
        fig.savefig(buffer, format="png", dpi=dpi)
    finally:
        plt.close(fig)
    return buffer.getvalue()


def show(result: Tensor | np.ndarray | ClassMaps | ExplanationLike, image: ImageLike = None, *,
         ax: Axes | None = None, which: str = "refined", sample: int = 0, class_id: int | str | None = None,
         sign: str = "auto", colorbar: bool = True, alpha: float = 0.6, title: str | None = None,
         display: bool = True) -> Figure:
    """Draw one map of a result in one line, and show it.

    Args:
        result: A :class:`~attrdist.var.VARResult`, an :class:`~attrdist.methods.Attribution`, a map
            ``[H, W]`` (tensor or array), or an :class:`~attrdist.explanation.Explanation` (then its whole
            paper-style figure is drawn).
        image: The RGB image the model saw (PIL, uint8 array, or a ``[3, H, W]`` tensor in [0, 1]) to draw the
            map over (:func:`attrdist.data.model_input` returns it); ``None`` draws the map alone.
        ax: The axis to draw on (default: a new figure).
        which: ``"refined"`` (VAR) or ``"raw"`` (vanilla) map of a :class:`~attrdist.var.VARResult`.
        sample: The sample of the batch.
        class_id: The class whose map is drawn, an id or a name of the result's class set (default: the target).
        sign: One of :data:`SIGNS`.
        colorbar: Draw a colour bar.
        alpha: Opacity of the map over the image.
        title: Axis title (default: the method and the class).
        display: Show a new figure: in Jupyter below the cell, in a script with ``plt.show()`` where matplotlib's
            backend is interactive (never on a non-interactive one such as ``agg``). A figure drawn on a given
            ``ax`` is the caller's to show.

    Returns:
        The figure.

    Raises:
        ValueError: On an unknown ``which``, a class outside the result's class set, or a map that is not 2-D.

    Example:
        >>> fig = show(torch.randn(8, 8), colorbar=False)
        >>> fig.axes[0].images[0].get_array().shape
        (8, 8, 3)
    """
    if isinstance(result, ExplanationLike):  # an Explanation: its whole figure (viz does not import it: no circle)
        fig = explanation_figure(result, sign=sign)
        if display:
            _display(fig)
        return fig
    if isinstance(result, torch.Tensor | np.ndarray):
        m = np.asarray(result.detach().cpu() if isinstance(result, torch.Tensor) else result, dtype=np.float64)
        name = ""
    else:
        m, name = _class_map(result, which, sample, class_id)
    if m.ndim != 2:
        raise ValueError(f"show draws a 2-D map, got shape {m.shape}")
    fig = _draw_map(m, image, ax, sign=sign, alpha=alpha, title=title if title is not None else name.strip(),
                    colorbar=colorbar, refined=which == "refined" and bool(name))
    if ax is None and display:
        _display(fig)
    return fig


def _draw_map(m: np.ndarray, image: ImageLike, ax: Axes | None, *, sign: str, alpha: float, title: str, colorbar: bool,
              refined: bool) -> Figure:
    """One map over the image on ``ax`` (default: a new figure of 4 inches), with its colour bar."""
    values, lo, hi, cmap = row_scale(m, sign)
    if ax is None:
        _, ax = plt.subplots(figsize=(4, 4))
    ax.imshow(overlay(_as_image(image), values, lo, hi, cmap, alpha))
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(title, fontsize=9)
    if colorbar:
        _colorbar(ax.figure, ax, lo, hi, cmap, label=_bar_label(sign, m, refined, 3.0))
    return cast("Figure", ax.figure)


class RefinedMaps(Protocol):
    """What a figure reads of one method's result (a :class:`~attrdist.var.VARResult`), a batch of one."""

    @property
    def maps(self) -> Tensor:
        """Raw maps ``[1, K, H, W]``."""

    @property
    def refined(self) -> Tensor:
        """Refined maps ``[1, K, H, W]``."""

    @property
    def q(self) -> Tensor:
        """The class distribution ``[1, K, ...]``."""

    @property
    def kept_nothing(self) -> Tensor:
        """Whether VAR kept no pixel of each map ``[1, K]`` (:func:`attrdist.var.kept_nothing`)."""


@runtime_checkable
class ExplanationLike(Protocol):
    """What :func:`explanation_figure` reads: an :class:`~attrdist.explanation.Explanation` (viz does not import it)."""

    @property
    def image(self) -> Image.Image | np.ndarray | None:
        """The image the model saw, or ``None`` (a result's picture)."""

    @property
    def classes(self) -> Sequence[int]:
        """The class set."""

    @property
    def target(self) -> int:
        """The explained class."""

    @property
    def class_names(self) -> Sequence[str]:
        """Names of the classes of the set."""

    @property
    def probabilities(self) -> Sequence[float]:
        """Probability of each class of the set."""

    @property
    def results(self) -> Mapping[str, RefinedMaps]:
        """Per method, its result."""

    @property
    def display_names(self) -> Mapping[str, str]:
        """Per method, its name in figures."""

    def variant_results(self) -> Mapping[str, Mapping[str, RefinedMaps]]:
        """Per VAR row (a preset's label), every method's result."""

    def caption(self) -> str:
        """The footer."""


@dataclass
class _Row:
    """One row of the figure: a method's raw maps, or its maps refined under one VAR preset."""

    method: str
    label: str
    maps: np.ndarray
    refined: bool
    q: np.ndarray | None = None
    zeroed: Sequence[bool] = ()


def _rows(exp: ExplanationLike, multiply_input: bool, grey: np.ndarray | None) -> list[_Row]:
    by_preset = exp.variant_results()
    several = len(by_preset) > 1

    def shown(maps: Tensor) -> np.ndarray:
        values = maps[0].double().numpy()
        return values * grey if multiply_input and grey is not None else values

    rows = []
    for name, res in exp.results.items():
        rows.append(_Row(name, "vanilla", shown(res.maps), False))
        for preset, results in by_preset.items():
            r = results[name]
            rows.append(_Row(name, f"VAR {preset}" if several else "VAR", shown(r.refined), True, r.q[0].numpy(),
                             [bool(z) for z in r.kept_nothing[0].tolist()]))
    return rows


@dataclass
class _Layout:
    """Sizes of the figure in inches, fitted so that every font is at least :data:`MIN_FONT_PT` at that size."""

    k: int
    rows_per_method: int
    cell: float
    colorbar: bool
    small: float = MIN_FONT_PT
    title_pt: float = 0.0
    title_lines: int = 1
    group_pt: float = 0.0
    group_lines: int = 1
    label_lines: int = 1
    left: float = 0.0
    right: float = 0.0
    top: float = 0.0
    gap_w: float = 0.0
    gap_h: float = 0.0
    bar_w: float = 0.0
    dominance: str = ""

    def fit(self, groups: Sequence[str], labels: Sequence[str], names: Sequence[str]) -> None:
        cell = self.cell
        self.title_pt = 9.0 if cell >= 1.8 else 8.0 if cell >= 1.2 else MIN_FONT_PT
        self.small = 8.0 if cell >= 1.8 else MIN_FONT_PT  # ticks, row names, legend, footer
        self.group_pt = self.title_pt + (1.0 if cell >= 1.8 else 0.0)
        self.title_lines = max([len(self.title(n, False).split("\n")) for n in names] + [1])
        self.gap_w = 0.06 * cell
        self.dominance = _fit("dominant class", cell + self.gap_w, self.small, 2)
        # room for the dominance map's title
        self.gap_h = max(0.06 * cell, len(self.dominance.split("\n")) * self.small * 1.3 / 72 + 0.04)
        self.group_lines = max(len(self.group(g).split("\n")) for g in groups)
        self.label_lines = max(len(self.label(t).split("\n")) for t in labels)
        self.left = 0.04 + (self.group_lines * self.group_pt + self.label_lines * self.small) * 1.25 / 72 + 0.04
        self.bar_w = max(0.06, 0.07 * cell)
        ticks = 0.06 + 4 * _EM * self.small / 72
        self.right = (self.gap_w + self.bar_w + ticks + 2 * self.small * 1.3 / 72 + 0.04) if self.colorbar else 0.06
        self.top = 0.08 + (self.title_lines + 1) * self.title_pt * 1.3 / 72

    def title(self, name: str, target: bool) -> str:
        """A class's name over its column, on two lines at most, the explained class marked ``*``."""
        return _fit(f"{name} *" if target else name, self.cell, self.title_pt, 2)

    def group(self, method: str) -> str:
        """A method's name, along the left of its rows."""
        span = self.rows_per_method * self.cell + (self.rows_per_method - 1) * self.gap_h
        return _fit(method, span, self.group_pt, 2)

    def label(self, text: str) -> str:
        """A row's name (vanilla, VAR, or the preset), along the left of the row."""
        return _fit(text, self.cell, self.small, 2)

    @property
    def width(self) -> float:
        return self.left + (self.k + 1) * self.cell + self.k * self.gap_w + self.right

    @classmethod
    def for_width(cls, width: float, k: int, rows_per_method: int, colorbar: bool, texts: tuple) -> _Layout:
        """The layout whose panels fill ``width`` inches."""
        lay = cls(k, rows_per_method, 1.0, colorbar)
        for _ in range(4):  # the margins depend on the panel size (how the labels wrap): a fixed point, reached fast
            lay.fit(*texts)
            fixed = lay.width - (k + 1) * lay.cell - k * lay.gap_w
            lay.cell = max(0.2, (width - fixed) / (k + 1 + 0.06 * k))
        lay.fit(*texts)
        return lay


@dataclass
class _Canvas:
    """The figure being drawn and its layout: where each panel goes, in inches from the top left."""

    fig: Figure
    lay: _Layout
    width: float
    height: float

    def axes(self, x: float, row: int, w: float) -> Axes:
        """An empty panel ``w`` inches wide at ``x`` inches from the left, in row ``row``."""
        cell = self.lay.cell
        y = self.height - self.lay.top - row * (cell + self.lay.gap_h) - cell
        ax = self.fig.add_axes((x / self.width, y / self.height, w / self.width, cell / self.height))
        ax.set_xticks([])
        ax.set_yticks([])
        return ax

    def column(self, c: int) -> float:
        """The left edge of column ``c`` (0: the image and the dominance maps), in inches."""
        return self.lay.left + c * (self.lay.cell + self.lay.gap_w)


@dataclass
class _Footer:
    """The legend's entries and columns and the caption's lines under the panels, and their height in inches."""

    names: list[str]
    ncol: int
    lines: list[str]
    height: float


def _footer(exp: ExplanationLike, lay: _Layout, caption: bool) -> _Footer:
    small, fig_w, k = lay.small, lay.width, len(exp.classes)
    text = " ".join(exp.caption().split()) if caption else ""
    lines = textwrap.wrap(text, _chars(fig_w - 0.2, small)) if text else []
    names = [_fit(n, fig_w - 0.6, small) for n in exp.class_names]
    entry = (max(len(n) for n in names) * _EM * small + 3.4 * small) / 72
    ncol = max(1, min(k, int((fig_w - 0.2) // entry)))
    legend_h = math.ceil(k / ncol) * small * 1.5 / 72 + 0.04
    return _Footer(names, ncol, lines, 0.06 + len(lines) * small * 1.3 / 72 + 0.06 + legend_h)


def _draw_maps(canvas: _Canvas, exp: ExplanationLike, img: np.ndarray | None, i: int, row: _Row,
               sign: str) -> tuple[float, float, str]:
    """The K panels of one row, framed in their class's colour (class names over the first row); its scale."""
    lay = canvas.lay
    classes = [int(c) for c in exp.classes]
    colors, target_col = class_colors(classes), classes.index(int(exp.target))
    zeroed_note = ("zeroed by VAR\n(no pixel where this\nclass dominates)" if _chars(lay.cell, lay.small) >= 21
                   else "zeroed\nby VAR")
    values, lo, hi, cmap = row_scale(row.maps, sign)
    for c in range(len(classes)):
        ax = canvas.axes(canvas.column(c + 1), i, lay.cell)
        ax.imshow(overlay(img, values[c], lo, hi, cmap))
        for spine in ax.spines.values():
            spine.set_edgecolor(colors[c])
            spine.set_linewidth(2 if lay.cell >= 1.0 else 1.2)
        if i == 0:
            p = float(exp.probabilities[c])
            prob = f"p = {p:.3f}" if _chars(lay.cell, lay.title_pt) >= 10 else f"p={p:.3f}".replace("0.", ".", 1)
            ax.set_title(f"{lay.title(exp.class_names[c], c == target_col)}\n{prob}", fontsize=lay.title_pt,
                         color="#1d2327", pad=3, fontweight="bold" if c == target_col else "normal")
        if row.refined and row.zeroed[c]:  # a blank panel says why it is blank
            ax.text(0.5, 0.5, zeroed_note, ha="center", va="center", fontsize=lay.small, color="#222222",
                    transform=ax.transAxes,
                    bbox={"facecolor": "white", "alpha": 0.85, "edgecolor": "#999999", "pad": 2})
    return lo, hi, cmap


def _draw_first(canvas: _Canvas, img: np.ndarray | None, classes: Sequence[int], i: int, row: _Row) -> None:
    """The row's first panel: the image (vanilla rows) or the class that dominates each pixel (VAR rows)."""
    lay = canvas.lay
    first = canvas.axes(canvas.column(0), i, lay.cell)
    if row.refined and row.q is not None:
        first.imshow(dominance_image(row.q, classes=classes))
        first.set_title(lay.dominance, fontsize=lay.small, pad=2)
    elif img is not None:
        first.imshow(img)
        if i == 0:
            first.set_title("input", fontsize=lay.title_pt, pad=3)
    else:  # no image (a result's own picture): an empty panel that keeps its row's label
        for spine in first.spines.values():
            spine.set_visible(False)
    first.set_ylabel(lay.label(row.label), fontsize=lay.small, labelpad=2)


def _draw_groups(canvas: _Canvas, groups: Mapping[str, str]) -> None:
    """Each method's name along the left of its rows."""
    lay, per_method = canvas.lay, canvas.lay.rows_per_method
    for m, (method, group) in enumerate(groups.items()):
        top = canvas.height - lay.top - m * per_method * (lay.cell + lay.gap_h)
        middle = top - (per_method * lay.cell + (per_method - 1) * lay.gap_h) / 2
        canvas.fig.text(0.04 / canvas.width, middle / canvas.height, lay.group(group), rotation=90, ha="left",
                        va="center", fontsize=lay.group_pt, fontweight="bold", gid=f"method-{method}")


def _draw_footer(canvas: _Canvas, footer: _Footer, classes: Sequence[int]) -> None:
    """The legend (each class in its colour) and the caption."""
    colors, small, fig_h = class_colors(classes), canvas.lay.small, canvas.height
    handles = [mpatches.Patch(color=colors[c], label=footer.names[c]) for c in range(len(classes))]
    canvas.fig.legend(handles=handles, loc="upper center", ncol=footer.ncol, fontsize=small, frameon=False,
                      handlelength=1.2, columnspacing=1.0, borderaxespad=0.0,
                      bbox_to_anchor=(0.5, (footer.height - 0.04) / fig_h))
    if footer.lines:
        canvas.fig.text(0.5, 0.06 / fig_h, "\n".join(footer.lines), ha="center", va="bottom", fontsize=small,
                        color="#444444")


def explanation_figure(exp: ExplanationLike, *, cell: float = 2.2, width: float | None = None, sign: str = "auto",
                       multiply_input: bool = False, colorbar: bool = True, caption: bool = True) -> Figure:
    """The paper-style figure of an :class:`~attrdist.explanation.Explanation`.

    Columns: the image (and, beside each VAR row, the class that dominates each pixel), then one column per class
    of the set, titled with its name and probability (the explained class marked ``*``), and a colour bar per row
    that says what it shows. For each method, one row of vanilla maps and one row of VAR maps per preset, each row
    on one colour scale shared by its K maps (so classes stay comparable; no map is scaled on its own). A map VAR
    zeroed (:func:`attrdist.var.kept_nothing`) says so on its panel. Each class has its colour (:func:`class_colors`)
    in its panels' frames, the legend and the dominance maps. The footer names the model, its weights, the method
    options, the preset(s) and the class set (:meth:`~attrdist.explanation.Explanation.caption`).

    Every font is at least :data:`MIN_FONT_PT` points at the figure's size: give ``width`` (in inches, such as
    3.3 for a paper's column or 6.9 for its text width) to lay the figure out for the size it is printed at.

    Args:
        exp: The explanation (anything with its fields: :class:`ExplanationLike`).
        cell: Size of one panel in inches (when no ``width`` is given).
        width: Width of the figure in inches; the panels shrink or grow to fill it.
        sign: How signed maps are drawn (:data:`SIGNS`).
        multiply_input: Multiply the maps by the image's grey level for illustration.
        colorbar: A colour bar per row.
        caption: The footer under the figure.

    Returns:
        The matplotlib figure.
    """
    img = None if exp.image is None else np.asarray(exp.image)
    grey = None if img is None else img.astype(np.float64).mean(-1) / 255.0
    classes = [int(c) for c in exp.classes]
    rows = _rows(exp, multiply_input, grey)
    groups = {m: exp.display_names.get(m, m) for m in exp.results}
    per_method = len(rows) // len(groups)
    texts = (list(groups.values()), [r.label for r in rows], list(exp.class_names))
    if width:
        lay = _Layout.for_width(width, len(classes), per_method, colorbar, texts)
    else:
        lay = _Layout(len(classes), per_method, cell, colorbar)
        lay.fit(*texts)
    footer = _footer(exp, lay, caption)
    fig_h = lay.top + len(rows) * lay.cell + (len(rows) - 1) * lay.gap_h + footer.height
    canvas = _Canvas(plt.figure(figsize=(lay.width, fig_h)), lay, lay.width, fig_h)
    for i, row in enumerate(rows):
        lo, hi, cmap = _draw_maps(canvas, exp, img, i, row, sign)
        if colorbar:
            cax = canvas.axes(canvas.column(len(classes) + 1), i, lay.bar_w)
            _colorbar(canvas.fig, cax, lo, hi, cmap, cax=cax, size=lay.small,
                      label=_bar_label(sign, row.maps, row.refined, lay.cell, lay.small))
        _draw_first(canvas, img, classes, i, row)
    _draw_groups(canvas, groups)
    _draw_footer(canvas, footer, classes)
    return canvas.fig


@dataclass
class _ResultView:
    """What :func:`explanation_figure` reads (:class:`ExplanationLike`), for a result without an image."""

    image: None
    classes: list[int]
    target: int
    class_names: list[str]
    probabilities: list[float]
    results: dict[str, RefinedMaps]
    display_names: dict[str, str] = field(default_factory=dict)

    def variant_results(self) -> dict[str, dict[str, RefinedMaps]]:
        """One VAR row: the result's own."""
        return {"": self.results}

    def caption(self) -> str:
        """No footer."""
        return ""


class ResultLike(RefinedMaps, Protocol):
    """What :func:`result_figure` reads: a :class:`~attrdist.var.VARResult` (viz does not import it)."""

    @property
    def classes(self) -> Tensor:
        """The class set ``[B, K]``."""

    @property
    def target(self) -> Tensor:
        """The explained class ``[B]``."""

    @property
    def probabilities(self) -> Tensor:
        """Probability of each class of the set ``[B, K]``."""

    @property
    def class_names(self) -> list[list[str]] | None:
        """Names of the classes of the set ``[B][K]``, or ``None``."""

    @property
    def method(self) -> str:
        """The attribution method's name."""

    def __getitem__(self, index: int) -> ResultLike:
        """The results of one sample (a batch of one)."""


def result_figure(result: ResultLike, *, sample: int = 0, sign: str = "auto", width: float | None = None) -> Figure:
    """The raw and VAR maps of every class of one sample of a :class:`~attrdist.var.VARResult`, with the dominance.

    Args:
        result: The result.
        sample: The sample of the batch.
        sign: How signed maps are drawn (:data:`SIGNS`).
        width: Width of the figure in inches (default: 1.6 inches per panel).

    Returns:
        The figure (what a result shows in Jupyter).
    """
    one = result[sample]
    classes = [int(c) for c in one.classes[0].tolist()]
    names = one.class_names
    view = _ResultView(image=None, classes=classes, target=int(one.target[0]),
                       class_names=names[0] if names else [f"class {c}" for c in classes],
                       probabilities=[float(p) for p in one.probabilities[0].tolist()],
                       results={one.method or "map": one})
    return explanation_figure(view, cell=1.6, width=width, sign=sign, caption=False)


def result_png(result: ResultLike) -> bytes:
    """:func:`result_figure` as PNG bytes (a :class:`~attrdist.var.VARResult`'s picture in Jupyter)."""
    return figure_png(result_figure(result))


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
        for path in out:  # a new file renamed over the name: a link or a FIFO there is replaced, never followed
            with atomic_open(path, "wb") as f:
                fig.savefig(f, dpi=dpi, format=path.suffix.lstrip(".").lower())
    finally:
        plt.close(fig)
    return out
