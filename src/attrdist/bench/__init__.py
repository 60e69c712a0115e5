"""Benchmarks on a resumable, sharded runner with an SQLite store, and their reports.

Every module of this package that registers a benchmark is imported here (:data:`BENCHMARKS`): a new
benchmark is one new file with its configuration, its run function and its report hooks.
"""

import importlib
import pkgutil

from .config import RunConfig
from .insertion import InsertionConfig, run_insertion
from .localization import LocalizationBenchmark, LocalizationConfig, run_localization  # noqa: I001 (registration order)
from .registry import BENCHMARKS, Benchmark, register_benchmark
from .report import summarize, write_report
from .runner import Shard, Skip, current_shard, run_items
from .sanity import SanityConfig, run_sanity
from .store import ConfigMismatchError, ResultStore

# the built-in benchmarks in the order the help lists them, then any other module of this package
for _name in ("localization", "insertion", "sanity", *(m.name for m in pkgutil.iter_modules(__path__))):
    importlib.import_module(f"{__name__}.{_name}")

__all__ = [
    "BENCHMARKS",
    "Benchmark",
    "ConfigMismatchError",
    "InsertionConfig",
    "LocalizationBenchmark",
    "LocalizationConfig",
    "ResultStore",
    "RunConfig",
    "SanityConfig",
    "Shard",
    "Skip",
    "current_shard",
    "register_benchmark",
    "run_insertion",
    "run_items",
    "run_localization",
    "run_sanity",
    "summarize",
    "write_report",
]
