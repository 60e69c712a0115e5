"""Benchmarks on a resumable, sharded runner with an SQLite store, and their reports."""

from .localization import LocalizationBenchmark, LocalizationConfig, run_localization
from .report import summarize, write_report
from .runner import Shard, Skip, current_shard, run_items
from .store import ConfigMismatchError, ResultStore

__all__ = [
    "ConfigMismatchError",
    "LocalizationBenchmark",
    "LocalizationConfig",
    "ResultStore",
    "Shard",
    "Skip",
    "current_shard",
    "run_items",
    "run_localization",
    "summarize",
    "write_report",
]
