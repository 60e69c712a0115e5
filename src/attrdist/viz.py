"""Figures in the style of the paper.

One column per class, vanilla and VAR rows per method, and a class-dominance panel that shows which
regions are shared between classes and which discriminate.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402
from torch import Tensor  # noqa: E402

if TYPE_CHECKING:
    from .explain import Explanation

__all__ = ["CLASS_COLORS", "dominance_image", "explanation_figure", "overlay", "row_scale"]

#: Colours of the classes of a set, in order (colour-blind-safe Okabe-Ito palette).
CLASS_COLORS = ["#E69F00", "#56B4E9", "#009E73", "#CC79A7", "#0072B2", "#D55E00", "#F0E442", "#000000"]


def dominance_image(q: Tensor | np.ndarray, relative: bool = True) -> np.ndarray:
    """Colour each pixel by the class with the largest ``q``; its strength by how far ``q`` is above 1/K.

    Args:
        q: Class distribution ``[K, H, W]``.
        relative: Scale the strength by the image's largest margin ``max_k q - 1/K`` (so that nearly
            uniform distributions, as from maps of small magnitude, stay visible); ``False`` scales by
            the largest possible margin ``1 - 1/K``.

    Returns:
        RGB float image ``[H, W, 3]`` in [0, 1]: white where the classes share a region (``q`` near
        uniform), saturated class colour where one class dominates.
    """
    q = np.asarray(q, dtype=np.float64)
    k = q.shape[0]
    top = q.argmax(0)
    margin = q.max(0) - 1.0 / k
    peak = float(margin.max()) if relative else 1.0 - 1.0 / k
    strength = np.clip(margin / peak, 0.0, 1.0) if peak > 0 else np.zeros_like(margin)
    colors = np.array([matplotlib.colors.to_rgb(CLASS_COLORS[i % len(CLASS_COLORS)]) for i in range(k)])
    return 1.0 - strength[..., None] * (1.0 - colors[top])


def overlay(image: np.ndarray, heat: np.ndarray, vmin: float, vmax: float, cmap: str, alpha: float = 0.6) -> np.ndarray:
    """Blend a heat map (colour-mapped between ``vmin`` and ``vmax``) over a grey version of the image."""
    grey = image.astype(np.float64).mean(-1, keepdims=True) / 255.0
    norm = np.clip((heat - vmin) / (vmax - vmin), 0, 1) if vmax > vmin else np.zeros_like(heat)
    coloured = plt.get_cmap(cmap)(norm)[..., :3]
    return (1 - alpha) * grey + alpha * coloured


def row_scale(maps: np.ndarray) -> tuple[float, float, str]:
    """Colour range and map for a row of K maps: one scale shared by the classes, so they stay comparable.

    Signed maps get a symmetric range and a diverging colour map; non-negative maps start at 0.
    """
    if (maps < 0).any():
        m = float(np.percentile(np.abs(maps), 99.5)) or float(np.abs(maps).max())
        return -m, m, "bwr"
    hi = float(np.percentile(maps, 99.5)) or float(maps.max())
    return 0.0, hi, "inferno"


def explanation_figure(exp: Explanation, cell: float = 2.2, multiply_input: bool = False) -> Figure:
    """The paper-style figure of an :class:`~attrdist.explain.Explanation`.

    Columns: the image (and, below it, the class-dominance map of each method), then one column per
    class of the set, titled with its name and probability (the explained class is marked). For each
    method, one row of vanilla maps and one row of VAR maps, each row on one colour scale shared by its
    K maps (so classes stay comparable; no map is scaled on its own).

    Args:
        exp: The explanation.
        cell: Size of one panel in inches.
        multiply_input: Multiply the maps by the image's grey level for illustration.

    Returns:
        The matplotlib figure.
    """
    img = np.asarray(exp.image)
    k = len(exp.classes)
    rows = 2 * len(exp.results)
    fig, axes = plt.subplots(rows, k + 1, figsize=(cell * (k + 1), cell * rows + 0.6), squeeze=False)
    grey = img.astype(np.float64).mean(-1) / 255.0
    for m, (name, res) in enumerate(exp.results.items()):
        vanilla = res.maps.numpy().astype(np.float64)
        refined = res.var.refined.numpy().astype(np.float64)
        if vanilla.ndim == 4:
            vanilla, refined = vanilla.sum(1), refined.sum(1)
        if multiply_input:
            vanilla, refined = vanilla * grey, refined * grey
        for r, (label, maps) in enumerate(((name, vanilla), (f"{name} + VAR", refined))):
            row = 2 * m + r
            lo, hi, cmap = row_scale(maps)
            for c in range(k):
                ax = axes[row, c + 1]
                ax.imshow(overlay(img, maps[c], lo, hi, cmap))
                ax.set_xticks([])
                ax.set_yticks([])
                if row == 0:
                    star = " (target)" if c == exp.target else ""
                    ax.set_title(f"{exp.class_names[c][:22]}{star}\np = {exp.probabilities[c]:.3f}",
                                 fontsize=9, color=CLASS_COLORS[c % len(CLASS_COLORS)])
                for spine in ax.spines.values():
                    spine.set_edgecolor(CLASS_COLORS[c % len(CLASS_COLORS)])
                    spine.set_linewidth(2)
            axes[row, 1].set_ylabel(label, fontsize=10)
        axes[2 * m, 0].imshow(img)
        axes[2 * m, 0].set_title("input" if m == 0 else "", fontsize=9)
        axes[2 * m + 1, 0].imshow(dominance_image(res.var.q.numpy()))
        axes[2 * m + 1, 0].set_title(f"class dominance ({name})", fontsize=8)
        for r in (2 * m, 2 * m + 1):
            axes[r, 0].set_xticks([])
            axes[r, 0].set_yticks([])
    handles = [Patch(color=CLASS_COLORS[c % len(CLASS_COLORS)], label=exp.class_names[c]) for c in range(k)]
    fig.legend(handles=handles, loc="lower center", ncol=min(k, 4), fontsize=8, frameon=False)
    t = exp.config.temperatures
    fig.suptitle(
        f"{exp.model['name']} - class set {exp.class_rule} - VAR T={list(t)}, tau={exp.config.tau}, "
        f"{exp.config.magnitude}, {exp.config.convention}, normalize={exp.config.normalize}",
        fontsize=9,
    )
    fig.tight_layout(rect=(0, 0.05, 1, 0.97))
    return fig
