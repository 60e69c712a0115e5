"""Benchmarks on a resumable, sharded runner with an SQLite store, and their reports.

A benchmark is a :class:`Benchmark` subclass in one module of this package (the base owns the pipeline:
dataset, run folder, model, methods, one VAR call per method, the variants, the runner); every module here is
imported, so a new file registers itself. :data:`BENCHMARKS` lists them in the order below, then any other module
in alphabetical order.
"""

import importlib
import pkgutil

# the built-in benchmarks in the order the help lists them, then any other module of this package
for _name in ("localization", "insertion", "sanity", "study",
              *sorted(m.name for m in pkgutil.iter_modules(__path__))):
    importlib.import_module(f"{__name__}.{_name}")

from .base import Benchmark, Estimate, Estimates, RunResult  # noqa: E402
from .config import ALL_VARIANTS, ImageRunConfig, RunConfig  # noqa: E402
from .insertion import Insertion, InsertionConfig, run_insertion  # noqa: E402
from .localization import (  # noqa: E402
    CocoConfig,
    CocoLocalization,
    Localization,
    LocalizationConfig,
    run_localization,
)
from .records import Curve, CurveSkip, ItemResult, MapCheck, Score, Skip, SkippedItem, UnitAttribute  # noqa: E402
from .registry import BENCHMARKS, register_benchmark  # noqa: E402
from .report import report_benchmark, summarize, write_report  # noqa: E402
from .runner import Shard, current_shard, run_items  # noqa: E402
from .sanity import Sanity, SanityConfig, run_sanity  # noqa: E402
from .store import ConfigMismatchError, ResultStore  # noqa: E402

__all__ = [
    "ALL_VARIANTS",
    "BENCHMARKS",
    "Benchmark",
    "CocoConfig",
    "CocoLocalization",
    "ConfigMismatchError",
    "Curve",
    "CurveSkip",
    "Estimate",
    "Estimates",
    "ImageRunConfig",
    "Insertion",
    "InsertionConfig",
    "ItemResult",
    "Localization",
    "LocalizationConfig",
    "MapCheck",
    "ResultStore",
    "RunConfig",
    "RunResult",
    "Sanity",
    "SanityConfig",
    "Score",
    "Shard",
    "Skip",
    "SkippedItem",
    "UnitAttribute",
    "current_shard",
    "register_benchmark",
    "report_benchmark",
    "run_insertion",
    "run_items",
    "run_localization",
    "run_sanity",
    "summarize",
    "write_report",
]
