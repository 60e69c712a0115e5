"""Similarity of two attribution maps (sanity checks, Adebayo et al. 2018): rank, linear and structural.

Each function takes two maps ``[H, W]`` (tensors or arrays) and returns a float; higher means more similar.
In a cascading-randomisation sanity check a *lower* similarity to the original map is better (the map
depends on the weights).

The paper (sec. 2.2 and appendix B) compares maps by the Spearman rank correlation with and without
absolute values, SSIM (window 5) and the Pearson correlation of HOG features (16x16-pixel cells), SSIM
and HOG on maps "normalized to [-1, +1]" without absolute values. The authors' released notebook differs:
it min-max scales the maps to [0, 1], computes SSIM with skimage's Gaussian 11-tap window and a data range
of 2 (the float default of skimage 0.15), and correlates HOG features by Spearman. Both are here:
``ssim`` and ``hog_pearson`` follow the paper (the defaults), ``ssim_notebook`` and ``hog_spearman`` the
notebook. All work on channel-summed maps.
"""

from __future__ import annotations

from typing import cast

import numpy as np
import torch
from scipy import stats
from torch import Tensor

from .base import METRICS, Deferred, SimilarityFn, metrics_for

__all__ = [
    "DEFAULT_SIMILARITIES",
    "SIMILARITIES",
    "cosine",
    "hog_pearson",
    "hog_spearman",
    "pearson",
    "similarities",
    "spearman",
    "spearman_abs",
    "ssim",
    "ssim_notebook",
]

def _np(a: Tensor | np.ndarray) -> np.ndarray:
    return a.detach().cpu().double().numpy() if isinstance(a, torch.Tensor) else np.asarray(a, dtype=np.float64)


def _corr(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a - a.mean(), b - b.mean()
    den = np.sqrt((a * a).sum() * (b * b).sum())
    return float((a * b).sum() / den) if den > 0 else 0.0


def spearman(a: Tensor | np.ndarray, b: Tensor | np.ndarray) -> float:
    """Spearman rank correlation of the signed maps (average ranks for ties; 0 for a constant map)."""
    return _corr(stats.rankdata(_np(a).ravel()), stats.rankdata(_np(b).ravel()))


def spearman_abs(a: Tensor | np.ndarray, b: Tensor | np.ndarray) -> float:
    """Spearman rank correlation of ``|map|`` (Adebayo et al.'s main measure)."""
    return spearman(np.abs(_np(a)), np.abs(_np(b)))


def pearson(a: Tensor | np.ndarray, b: Tensor | np.ndarray) -> float:
    """Pearson correlation of the signed maps (0 for a constant map)."""
    return _corr(_np(a).ravel(), _np(b).ravel())


def cosine(a: Tensor | np.ndarray, b: Tensor | np.ndarray) -> float:
    """Cosine similarity of the flattened signed maps (0 if one map is all zero)."""
    x, y = _np(a).ravel(), _np(b).ravel()
    den = np.linalg.norm(x) * np.linalg.norm(y)
    return float(x @ y / den) if den > 0 else 0.0


def _signed_unit(a: Tensor | np.ndarray) -> np.ndarray:
    """The signed map divided by its largest magnitude: values in [-1, 1], 0 stays 0 (the paper's scaling)."""
    x = _np(a)
    m = np.abs(x).max()
    return x / m if m > 0 else x


def _min_max(a: Tensor | np.ndarray) -> np.ndarray:
    """Min-max scaling to [0, 1] (the notebook's ``normalize_image``)."""
    x = _np(a)
    span = x.max() - x.min()
    return (x - x.min()) / span if span > 0 else np.zeros_like(x)


def ssim(a: Tensor | np.ndarray, b: Tensor | np.ndarray) -> float:
    """SSIM of the signed maps scaled to [-1, 1] (``m / max|m|``), window 5, data range 2 (the paper)."""
    from skimage.metrics import structural_similarity

    x, y = _signed_unit(a), _signed_unit(b)
    win = min(5, *(s - 1 + s % 2 for s in x.shape))  # odd and no larger than the map
    return float(structural_similarity(x, y, win_size=win, data_range=2.0))


def ssim_notebook(a: Tensor | np.ndarray, b: Tensor | np.ndarray) -> float:
    """SSIM as in the authors' notebook: min-max [0, 1] maps, Gaussian window (sigma 1.5), data range 2."""
    from skimage.metrics import structural_similarity

    return float(structural_similarity(_min_max(a), _min_max(b), gaussian_weights=True, sigma=1.5,
                                       use_sample_covariance=True, data_range=2.0))


def _hog(x: np.ndarray) -> np.ndarray:
    from skimage.feature import hog

    # 16x16-pixel cells and skimage's 3x3-cell blocks (as in the paper and the notebook); smaller maps get
    # smaller cells so that one block still fits
    cell = max(1, min(16, min(x.shape) // 3))
    return hog(x, pixels_per_cell=(cell, cell), cells_per_block=(3, 3))


def hog_pearson(a: Tensor | np.ndarray, b: Tensor | np.ndarray) -> float:
    """Pearson correlation of the HOG features of the signed maps scaled to [-1, 1] (the paper)."""
    return _corr(_hog(_signed_unit(a)), _hog(_signed_unit(b)))


def hog_spearman(a: Tensor | np.ndarray, b: Tensor | np.ndarray) -> float:
    """Spearman correlation of the HOG features of the min-max scaled maps (the authors' notebook)."""
    return spearman(_hog(_min_max(a)), _hog(_min_max(b)))


#: The built-in similarity measures by name (:mod:`attrdist.metrics.catalog` declares them, with their direction, as
#: ``similarity`` metrics).
SIMILARITIES: dict[str, SimilarityFn] = {
    name: globals()[name] for name, m in METRICS.items() if m.task == "similarity" and isinstance(m.function, Deferred)}

#: The measures a sanity run computes unless told otherwise: the paper's, plus Pearson and cosine.
DEFAULT_SIMILARITIES = tuple(metrics_for("similarity"))


def similarities(a: Tensor | np.ndarray, b: Tensor | np.ndarray,
                 names: tuple[str, ...] | list[str] = DEFAULT_SIMILARITIES) -> dict[str, float]:
    """The named measures (default :data:`DEFAULT_SIMILARITIES`) for one pair of maps ``[H, W]``.

    Raises:
        ValueError: On an unknown measure.
    """
    return {name: cast(SimilarityFn, m.fn)(a, b) for name, m in metrics_for("similarity", list(names)).items()}
