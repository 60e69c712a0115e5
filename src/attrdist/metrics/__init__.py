"""Metrics: pure batched functions over maps and regions, registered with the direction that makes them better.

The registry (:data:`METRICS`: names, tasks, directions) is read without importing torch: the built-in metrics are
declared in :mod:`.catalog` and registered here; their functions load with their module (:mod:`.localization`,
:mod:`.similarity`) on first use, and :mod:`.checks`, :mod:`.insertion` and :mod:`.rise` hold what the benchmarks
compute themselves. This package's face reads the
functions below from those modules when first asked for, as ``attrdist``'s does. Any other module of this package
registers its own metrics and is imported here: a new metric is one new file (see ``docs/extending.md``).
"""

from __future__ import annotations

import importlib
import pkgutil
from typing import TYPE_CHECKING

from .base import BINARIZATION_RULES, METRICS, Metric, metrics_for, metrics_of, register_metric
from .catalog import BUILT_IN

if TYPE_CHECKING:
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

#: Public name -> the module of this package that defines it (imported on first use).
_EXPORTS = {
    "BINARIZATIONS": "localization",
    "binarize": "localization",
    "degenerate": "checks",
    "f1_score": "localization",
    "iou": "localization",
    "localization_scores": "localization",
    "precision": "localization",
    "recall": "localization",
    "region_attribution": "localization",
    "smooth": "localization",
}
for _metric in BUILT_IN:
    METRICS.register(_metric.name)(_metric)

#: The modules of the built-in metrics (declared in ``catalog``); any other module here is a plugin, imported here.
_BUILT_IN_MODULES = frozenset({"base", "catalog", "checks", "insertion", "localization", "rise", "similarity"})

for _module in pkgutil.iter_modules(__path__):
    if _module.name not in _BUILT_IN_MODULES:
        importlib.import_module(f"{__name__}.{_module.name}")

__all__ = [
    "BINARIZATIONS",
    "BINARIZATION_RULES",
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


def __getattr__(name: str) -> object:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
