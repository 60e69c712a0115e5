"""Metrics: pure batched functions over maps and regions, registered with the direction that makes them better.

Every module of this package registers its metrics when imported, and all of them are imported here: a new
metric is one new file (see ``docs/extending.md``).
"""

import importlib
import pkgutil

from .base import METRICS, Metric, metrics_for, metrics_of, register_metric
from .checks import degenerate
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

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")

__all__ = [
    "BINARIZATIONS",
    "METRICS",
    "Metric",
    "binarize",
    "degenerate",
    "f1_score",
    "iou",
    "localization_scores",
    "metrics_for",
    "metrics_of",
    "precision",
    "recall",
    "region_attribution",
    "register_metric",
    "smooth",
]
