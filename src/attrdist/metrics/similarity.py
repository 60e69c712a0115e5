"""Similarity of two attribution maps (sanity checks): rank, linear and structural.

Each function takes two maps ``[H, W]`` (tensors or arrays) and returns a float.
"""

from __future__ import annotations

import numpy as np
from scipy.stats import rankdata
from torch import Tensor

__all__ = ["SIMILARITIES", "cosine", "hog_spearman", "pearson", "spearman", "spearman_abs", "ssim", "similarities"]


def _np(a: Tensor | np.ndarray) -> np.ndarray:
    return (a.detach().cpu().double().numpy() if isinstance(a, Tensor) else np.asarray(a, dtype=np.float64)).ravel()


def _corr(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a - a.mean(), b - b.mean()
    den = np.sqrt((a * a).sum() * (b * b).sum())
    return float((a * b).sum() / den) if den > 0 else 0.0


def spearman(a: Tensor | np.ndarray, b: Tensor | np.ndarray) -> float:
    """Spearman rank correlation of the signed maps (average ranks for ties; 0 for a constant map)."""
    return _corr(rankdata(_np(a)), rankdata(_np(b)))


def spearman_abs(a: Tensor | np.ndarray, b: Tensor | np.ndarray) -> float:
    """Spearman rank correlation of ``|map|`` (Adebayo et al.'s main measure)."""
    return spearman(np.abs(_np(a)), np.abs(_np(b)))


def pearson(a: Tensor | np.ndarray, b: Tensor | np.ndarray) -> float:
    """Pearson correlation of the signed maps (0 for a constant map)."""
    return _corr(_np(a), _np(b))


def cosine(a: Tensor | np.ndarray, b: Tensor | np.ndarray) -> float:
    """Cosine similarity of the flattened signed maps (0 if one map is all zero)."""
    x, y = _np(a), _np(b)
    den = np.linalg.norm(x) * np.linalg.norm(y)
    return float(x @ y / den) if den > 0 else 0.0


def _unit_abs(a: Tensor | np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    x = np.abs(_np(a)).reshape(shape)
    m = x.max()
    return x / m if m > 0 else x


def ssim(a: Tensor | np.ndarray, b: Tensor | np.ndarray) -> float:
    """SSIM of ``|map| / max|map|`` of both maps, with the data range given explicitly (1)."""
    from skimage.metrics import structural_similarity

    shape = tuple(a.shape)
    return float(structural_similarity(_unit_abs(a, shape), _unit_abs(b, shape), data_range=1.0))


def hog_spearman(a: Tensor | np.ndarray, b: Tensor | np.ndarray) -> float:
    """Spearman correlation of the HOG features of ``|map| / max|map|`` (8x8 cells, 2x2 blocks).

    Maps under 32 pixels use smaller cells.
    """
    from skimage.feature import hog

    shape = tuple(a.shape)
    cell = max(1, min(8, min(shape) // 4))
    ha = hog(_unit_abs(a, shape), pixels_per_cell=(cell, cell), cells_per_block=(2, 2))
    hb = hog(_unit_abs(b, shape), pixels_per_cell=(cell, cell), cells_per_block=(2, 2))
    return spearman(ha, hb)


#: The similarity measures of the sanity check, the single list used by the runner and the report.
SIMILARITIES = {
    "spearman_abs": spearman_abs,
    "spearman": spearman,
    "pearson": pearson,
    "cosine": cosine,
    "ssim": ssim,
    "hog_spearman": hog_spearman,
}


def similarities(a: Tensor | np.ndarray, b: Tensor | np.ndarray) -> dict[str, float]:
    """Every measure of :data:`SIMILARITIES` for one pair of maps ``[H, W]``."""
    return {name: fn(a, b) for name, fn in SIMILARITIES.items()}
