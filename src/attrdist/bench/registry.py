"""The benchmark registry: each benchmark is its configuration class, its run function and its report hooks."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ..registry import Registry

__all__ = ["BENCHMARKS", "Benchmark", "register_benchmark"]


def _no_unit(store: object) -> str | None:
    return None


def _no_plots(store: object, table: object, run_dir: Path) -> dict[str, Path]:
    return {}


@dataclass(frozen=True)
class Benchmark:
    """A registered benchmark.

    Attributes:
        name: The name (``attrdist bench NAME``), also stored with every run.
        config: Its run-configuration dataclass (a :class:`~attrdist.bench.config.RunConfig`).
        run: ``(config, out_dir) -> ResultStore``: run or resume into a folder.
        summary: One line for ``attrdist bench --help``.
        needs: The dataset capability it reads (``images``, ``labels``, ``grids``, ``objects``).
        examples: Example command lines for its ``--help``.
        report_unit: ``store -> unit``: the unit the report's table summarises (``None``: every unit).
        plots: ``(store, table, run_dir) -> {name: path}``: its figures (``attrdist report``).
    """

    name: str
    config: type
    run: Callable
    summary: str
    needs: str = "images"
    examples: tuple[str, ...] = ()
    report_unit: Callable[[object], str | None] = field(default=_no_unit)
    plots: Callable[[object, object, Path], dict[str, Path]] = field(default=_no_plots)


#: The benchmarks, the single list behind ``attrdist bench``, ``attrdist report`` and the docs.
BENCHMARKS: Registry[Benchmark] = Registry("benchmark")


def register_benchmark(benchmark: Benchmark) -> Benchmark:
    """Add a benchmark to :data:`BENCHMARKS` (returns it)."""
    return BENCHMARKS.register(benchmark.name)(benchmark)
