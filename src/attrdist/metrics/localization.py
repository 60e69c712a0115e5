"""Localisation metrics as pure batched tensor functions.

Every function takes maps ``[N, H, W]`` and boolean region masks ``[N, H, W]`` (one region per map) and
returns one value per map. Only the positive part of a map counts as evidence for its class.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "BINARIZATIONS",
    "binarize",
    "f1_score",
    "iou",
    "localization_scores",
    "precision",
    "recall",
    "region_attribution",
    "smooth",
]

#: Below this total positive attribution a map counts as empty (its region attribution is 0).
EMPTY_MAP = 1e-7


def smooth(
    maps: Tensor, kernel: int = 11, sigma: float = 5.0, kind: Literal["gaussian", "box", "none"] = "gaussian"
) -> Tensor:
    """Smooth maps with a normalised 2-D kernel (zero padding, same size).

    Args:
        maps: ``[N, H, W]``.
        kernel: Odd kernel size (default 11, as in the paper).
        sigma: Standard deviation of the Gaussian (default 5, as in the RISE code).
        kind: ``"gaussian"``, ``"box"`` (a mean filter, as B-cos v2's average pooling) or ``"none"``.

    Returns:
        Smoothed maps ``[N, H, W]``, same dtype.

    Raises:
        ValueError: On an even or non-positive kernel size or an unknown kind.
    """
    if kind == "none":
        return maps
    if kernel < 1 or kernel % 2 == 0:
        raise ValueError(f"kernel size must be a positive odd number, got {kernel}")
    if kind == "gaussian":
        if not (math.isfinite(sigma) and sigma > 0):
            raise ValueError(f"sigma must be a positive number, got {sigma}")
        r = torch.arange(kernel, dtype=torch.float64) - kernel // 2
        g = torch.exp(-(r**2) / (2 * sigma**2))
    elif kind == "box":
        g = torch.ones(kernel, dtype=torch.float64)
    else:
        raise ValueError(f"unknown smoothing {kind!r}; use 'gaussian', 'box' or 'none'")
    # both kernels are separable: a column pass and a row pass equal the 2-D zero-padded convolution
    g = (g / g.sum()).to(maps.dtype).to(maps.device)
    out = F.conv2d(maps[:, None], g.view(1, 1, -1, 1), padding=(kernel // 2, 0))
    return F.conv2d(out, g.view(1, 1, 1, -1), padding=(0, kernel // 2))[:, 0]


def region_attribution(maps: Tensor, masks: Tensor) -> Tensor:
    """Share of the positive attribution inside the region (energy pointing game, relevance mass).

    Args:
        maps: ``[N, H, W]``.
        masks: Boolean regions ``[N, H, W]``.

    Returns:
        ``sum_R A+ / sum A+`` per map; 0 where ``sum A+ <= 1e-7``.
    """
    pos = maps.clamp(min=0).flatten(1)
    total = pos.sum(1)
    inside = (pos * masks.flatten(1).to(pos.dtype)).sum(1)
    return torch.where(total > EMPTY_MAP, inside / total.clamp(min=EMPTY_MAP), torch.zeros_like(total))


def _thr_mean(pos: Tensor, masks: Tensor, value: float) -> Tensor:
    return pos > pos.mean(1, keepdim=True) * value


def _thr_max_fraction(pos: Tensor, masks: Tensor, value: float) -> Tensor:
    return pos > pos.amax(1, keepdim=True) * value


def _thr_region_size(pos: Tensor, masks: Tensor, value: float) -> Tensor:
    # the top-|R| pixels (Quantus' RelevanceRankAccuracy); ties broken by position
    n = masks.flatten(1).sum(1)
    order = pos.argsort(dim=1, descending=True, stable=True)
    rank = torch.empty_like(order)
    rank.scatter_(1, order, torch.arange(pos.shape[1], device=pos.device).expand_as(order))
    return (rank < n[:, None]) & (pos > 0)


#: Binarisation rules of the positive map part, the single list used by the metrics, runner and CLI.
BINARIZATIONS = {
    "mean": _thr_mean,  # A+ > value * mean(A+), value 1 (Chefer et al.: min-max then > mean)
    "max_fraction": _thr_max_fraction,  # A+ > value * max(A+), value 0.3 in T-attn
    "region_size": _thr_region_size,  # the |R| highest pixels (Quantus RelevanceRankAccuracy)
}


def binarize(maps: Tensor, masks: Tensor, rule: str = "mean", value: float = 1.0) -> Tensor:
    """Binary maps from the positive part.

    Args:
        maps: ``[N, H, W]``.
        masks: Regions ``[N, H, W]`` (used by ``"region_size"`` only).
        rule: A key of :data:`BINARIZATIONS` (default ``"mean"``: ``A+ > mean(A+)``).
        value: The rule's factor (``mean``: 1; ``max_fraction``: e.g. 0.3).

    Returns:
        Boolean ``[N, H, W]``; all false for an all-zero map.

    Raises:
        ValueError: On an unknown rule.
    """
    if rule not in BINARIZATIONS:
        raise ValueError(f"unknown binarisation {rule!r}; choose one of {sorted(BINARIZATIONS)}")
    pos = maps.clamp(min=0).flatten(1)
    out = BINARIZATIONS[rule](pos, masks, value) & (pos > 0)
    return out.view_as(maps)


def _counts(pred: Tensor, masks: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    p, m = pred.flatten(1), masks.flatten(1)
    tp = (p & m).sum(1).double()
    return tp, p.sum(1).double(), m.sum(1).double()


def iou(pred: Tensor, masks: Tensor) -> Tensor:
    """Intersection over union of binary maps and regions (0 when both are empty)."""
    tp, np_, nm = _counts(pred, masks)
    union = np_ + nm - tp
    return torch.where(union > 0, tp / union.clamp(min=1), torch.zeros_like(tp))


def precision(pred: Tensor, masks: Tensor) -> Tensor:
    """Fraction of the predicted pixels inside the region (0 for an empty prediction)."""
    tp, np_, _ = _counts(pred, masks)
    return torch.where(np_ > 0, tp / np_.clamp(min=1), torch.zeros_like(tp))


def recall(pred: Tensor, masks: Tensor) -> Tensor:
    """Fraction of the region covered by the prediction (0 for an empty region)."""
    tp, _, nm = _counts(pred, masks)
    return torch.where(nm > 0, tp / nm.clamp(min=1), torch.zeros_like(tp))


def f1_score(pred: Tensor, masks: Tensor) -> Tensor:
    """Harmonic mean of precision and recall (0 where both are 0)."""
    p, r = precision(pred, masks), recall(pred, masks)
    return torch.where(p + r > 0, 2 * p * r / (p + r).clamp(min=1e-12), torch.zeros_like(p))


def localization_scores(
    maps: Tensor, masks: Tensor, kernel: int = 11, sigma: float = 5.0, smoothing: str = "gaussian",
    rule: str = "mean", value: float = 1.0,
) -> dict[str, Tensor]:
    """All localisation metrics of maps against regions, after smoothing.

    Args:
        maps: ``[N, H, W]`` at the resolution of the masks.
        masks: Boolean regions ``[N, H, W]``.
        kernel: Smoothing kernel size.
        sigma: Gaussian sigma.
        smoothing: ``"gaussian"``, ``"box"`` or ``"none"``.
        rule: Binarisation rule for IoU / precision / recall / F1.
        value: The rule's factor.

    Returns:
        ``{"region_attribution", "iou", "precision", "recall", "f1"}``, each ``[N]`` (region attribution
        in the maps' floating dtype, the others float64).
    """
    if maps.shape != masks.shape:
        raise ValueError(f"maps {tuple(maps.shape)} and masks {tuple(masks.shape)} must have the same shape")
    masks = masks.bool()
    s = smooth(maps if maps.dtype in (torch.float32, torch.float64) else maps.float(), kernel, sigma, smoothing)  # type: ignore[arg-type]
    pred = binarize(s, masks, rule, value)
    return {
        "region_attribution": region_attribution(s, masks),
        "iou": iou(pred, masks),
        "precision": precision(pred, masks),
        "recall": recall(pred, masks),
        "f1": f1_score(pred, masks),
    }
