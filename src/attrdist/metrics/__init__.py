"""Metrics: pure batched functions over maps and regions."""

from .localization import (
    BINARIZATIONS,
    binarize,
    f1_score,
    iou,
    localization_scores,
    precision,
    recall,
    region_attribution,
    smooth,
)

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
