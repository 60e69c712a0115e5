"""Benchmarks on a resumable, sharded runner with an SQLite store, and their reports."""

from .config import RunConfig
from .insertion import InsertionConfig, run_insertion
from .localization import LocalizationBenchmark, LocalizationConfig, run_localization
from .report import summarize, write_report
from .runner import Shard, Skip, current_shard, run_items
from .sanity import SanityConfig, run_sanity
from .store import ConfigMismatchError, ResultStore

#: The benchmarks: name -> (configuration class, run function); the CLI reads its options from here.
BENCHMARKS = {
    "localization": (LocalizationConfig, run_localization),
    "insertion": (InsertionConfig, run_insertion),
    "sanity": (SanityConfig, run_sanity),
}

__all__ = [
    "BENCHMARKS",
    "ConfigMismatchError",
    "InsertionConfig",
    "RunConfig",
    "SanityConfig",
    "run_insertion",
    "run_sanity",
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
