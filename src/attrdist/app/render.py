"""The explorer's pictures: maps over the image as PNG data URLs, one colour scale per row."""

from __future__ import annotations

import base64
import functools
import io

import numpy as np
from matplotlib import colormaps
from PIL import Image

from ..viz import overlay, row_scale

__all__ = ["colormap_png", "png", "row"]


def png(array: np.ndarray) -> str:
    """An ``[H, W, 3]`` array in [0, 1] as a PNG data URL."""
    img = Image.fromarray((np.clip(array, 0, 1) * 255).round().astype(np.uint8))
    buf = io.BytesIO()
    img.save(buf, format="PNG", compress_level=1)  # 4x faster than the default level, 12% larger
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


@functools.lru_cache(maxsize=16)
def colormap_png(cmap: str) -> str:
    """A colour map as a horizontal bar (a PNG data URL), for the page's colour scales."""
    return png(colormaps[cmap](np.linspace(0, 1, 256))[None, :, :3].repeat(8, 0))


def row(img: np.ndarray, maps: np.ndarray, sign: str) -> dict[str, object]:
    """One row of panels: each map over the image (data URLs) on the row's colour scale.

    Args:
        img: The image ``[H, W, 3]`` in 0..255.
        maps: The row's maps ``[K, h, w]``.
        sign: How signed maps are drawn (:data:`attrdist.viz.SIGNS`).

    Returns:
        ``{"panels": [data URL, ...], "scale": {"min", "max", "colormap"}}``.
    """
    values, lo, hi, cmap = row_scale(maps.astype(np.float64), sign)
    return {"panels": [png(overlay(img, m, lo, hi, cmap)) for m in values],
            "scale": {"min": lo, "max": hi, "colormap": colormap_png(cmap)}}
