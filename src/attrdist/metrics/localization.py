"""Localisation metrics as pure batched tensor functions.

Every function takes maps ``[N, H, W]`` and boolean region masks ``[N, H, W]`` (one region per map) and
returns one value per map. Only the positive part of a map counts as evidence for its class.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import Literal, cast

import torch
from torch import Tensor

from ..smoothing import smooth as _smooth
from .base import PAPER_BORDER, PAPER_KERNEL, PAPER_SIGMA, Binarization, LocalizationFn, metrics_for

__all__ = [
    "BINARIZATIONS",
    "PAPER_BORDER",
    "PAPER_KERNEL",
    "PAPER_SIGMA",
    "opencv_sigma",
    "binarize",
    "f1_score",
    "iou",
    "localization_scores",
    "precision",
    "recall",
    "region_attribution",
    "score_f1",
    "score_iou",
    "score_precision",
    "score_recall",
    "score_region_attribution",
    "smooth",
]

#: Below this total positive attribution a map counts as empty (its region attribution is 0).
EMPTY_MAP = 1e-7

_Smoothing = Literal["gaussian", "box", "none"]
_Border = Literal["reflect", "zeros"]


def smooth(
    maps: Tensor, kernel: int = PAPER_KERNEL, sigma: float = PAPER_SIGMA,
    kind: Literal["gaussian", "box", "none"] = "gaussian", border: Literal["reflect", "zeros"] = PAPER_BORDER,
) -> Tensor:
    """The metrics' smoothing: :func:`attrdist.smoothing.smooth` with the paper's defaults (11x11, sigma 2, reflect).

    Example:
        >>> m = torch.zeros(1, 21, 21); m[0, 10, 10] = 1.0
        >>> round(float(smooth(m).sum()), 6), round(float(smooth(m)[0, 10, 10]), 4)
        (1.0, 0.0402)
    """
    return _smooth(maps, kernel, sigma, kind, border)


def opencv_sigma(kernel: int) -> float:
    """The sigma OpenCV's ``GaussianBlur`` derives for ``sigma=0``: ``0.3 * ((kernel - 1) / 2 - 1) + 0.8``."""
    return 0.3 * ((kernel - 1) * 0.5 - 1) + 0.8


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
BINARIZATIONS: dict[Binarization, Callable[[Tensor, Tensor, float], Tensor]] = {
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
    """True positives, predicted and region pixels per map, as float64.

    IoU, precision, recall and F1 of the same binary maps and regions share one count (the last pair counted is
    remembered while both tensors live unchanged: five metrics, three counts instead of fifteen).
    """
    global _last_count
    key = (id(pred), pred._version, id(masks), masks._version)
    last = _last_count
    if last is not None and last[0] == key and last[1]() is pred and last[2]() is masks:
        return last[3]
    p, m = pred.flatten(1).bool(), masks.flatten(1).bool()
    counts = (_count(p & m), _count(p), _count(m))
    _last_count = (key, weakref.ref(pred), weakref.ref(masks), counts)
    return counts


_last_count: tuple | None = None


def _count(flags: Tensor) -> Tensor:
    """True values per row of a boolean ``[N, P]``, as float64 (summed as bytes into int32: 3x faster than bools)."""
    return flags.contiguous().view(torch.uint8).sum(1, dtype=torch.int32).double()


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


# the registered localisation metrics (:mod:`attrdist.metrics.base` declares them): fn(maps, masks, binary)
def score_region_attribution(maps: Tensor, masks: Tensor, binary: Tensor) -> Tensor:
    """Metric ``region_attribution``: :func:`region_attribution` of the smoothed maps."""
    return region_attribution(maps, masks)


def score_iou(maps: Tensor, masks: Tensor, binary: Tensor) -> Tensor:
    """Metric ``iou``: :func:`iou` of the binarised maps."""
    return iou(binary, masks)


def score_precision(maps: Tensor, masks: Tensor, binary: Tensor) -> Tensor:
    """Metric ``precision``: :func:`precision` of the binarised maps."""
    return precision(binary, masks)


def score_recall(maps: Tensor, masks: Tensor, binary: Tensor) -> Tensor:
    """Metric ``recall``: :func:`recall` of the binarised maps."""
    return recall(binary, masks)


def score_f1(maps: Tensor, masks: Tensor, binary: Tensor) -> Tensor:
    """Metric ``f1``: :func:`f1_score` of the binarised maps."""
    return f1_score(binary, masks)


def localization_scores(
    maps: Tensor, masks: Tensor, kernel: int = PAPER_KERNEL, sigma: float = PAPER_SIGMA, smoothing: str = "gaussian",
    rule: str = "mean", value: float = 1.0, border: str = PAPER_BORDER, metrics: list[str] | None = None,
) -> dict[str, Tensor]:
    """Every localisation metric of maps against regions, in the paper's order.

    The paper (appendix B): "We only take the positive part of H_c. Before evaluation, we apply a Gaussian
    blur with a kernel size of 11x11". So the positive part comes first, then the smoothing, then region
    attribution and the binarised scores. (Blurring the signed map first lets negative evidence cancel
    positive evidence nearby.)

    Args:
        maps: ``[N, H, W]`` at the resolution of the masks.
        masks: Boolean regions ``[N, H, W]``.
        kernel: Smoothing kernel size.
        sigma: Gaussian sigma.
        smoothing: ``"gaussian"``, ``"box"`` or ``"none"``.
        rule: Binarisation rule for IoU / precision / recall / F1.
        value: The rule's factor.
        border: Smoothing border (see :func:`smooth`).
        metrics: Registered localisation metrics to compute (default: every default one).

    Returns:
        ``{name: [N]}``, e.g. ``region_attribution``, ``iou``, ``precision``, ``recall``, ``f1``.

    Raises:
        ValueError: If maps and masks differ in shape, or on an unknown metric.
    """
    if maps.shape != masks.shape:
        raise ValueError(f"maps {tuple(maps.shape)} and masks {tuple(masks.shape)} must have the same shape")
    masks = masks.bool()
    pos = (maps if maps.dtype in (torch.float32, torch.float64) else maps.float()).clamp(min=0)
    s = smooth(pos, kernel, sigma, cast(_Smoothing, smoothing), cast(_Border, border))  # smooth() refuses others
    binary = binarize(s, masks, rule, value)
    return {name: cast(LocalizationFn, m.fn)(s, masks, binary)
            for name, m in metrics_for("localization", metrics).items()}
