"""The metric registry: every metric a benchmark stores, with the direction that makes it better.

A metric is a pure function registered under the name its results are stored by, with its task (which
benchmark computes it and what it is given) and ``higher_is_better``, which the report reads to tell an
improvement from a regression. Tasks and their functions:

* ``localization``: ``fn(maps, masks, binary) -> [N]`` with the smoothed positive maps ``[N, H, W]``, the
  boolean regions and the binarised maps;
* ``similarity``: ``fn(a, b) -> float`` for two maps ``[H, W]`` (sanity checks);
* ``insertion`` and ``count``: computed inside their benchmark (``fn`` is ``None``); registered for their
  direction.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ..registry import Registry

__all__ = ["METRICS", "Metric", "metrics_for", "metrics_of", "register_metric"]


@dataclass(frozen=True)
class Metric:
    """A registered metric.

    Attributes:
        name: The name results are stored under.
        task: ``localization``, ``similarity``, ``insertion`` or ``count``.
        higher_is_better: Direction of improvement.
        fn: The function (see the module docstring), ``None`` where the benchmark computes it.
        summary: One line for the docs and the report.
        default: Computed unless a run names its metrics.
        relative: The report shows changes against vanilla in percent (``False``: as differences, for metrics
            that live around 0, such as correlations).
    """

    name: str
    task: str
    higher_is_better: bool
    fn: Callable | None = None
    summary: str = ""
    default: bool = True
    relative: bool = True


#: Every metric, the single list the benchmarks, the report and the docs read.
METRICS: Registry[Metric] = Registry("metric")


def register_metric(name: str, *, task: str, higher_is_better: bool, summary: str = "", default: bool = True,
                    relative: bool = True) -> Callable[[Callable | None], Callable | None]:
    """Register the decorated function as metric ``name`` (returns the function unchanged).

    Example:
        >>> @register_metric("inside_max", task="localization", higher_is_better=True)  # doctest: +SKIP
        ... def inside_max(maps, masks, binary):
        ...     return (maps * masks).flatten(1).amax(1) / maps.flatten(1).amax(1)
    """

    def decorate(fn: Callable | None) -> Callable | None:
        METRICS.register(name)(Metric(name, task, higher_is_better, fn, summary, default, relative))
        return fn

    return decorate


def metrics_of(task: str) -> list[str]:
    """The names of every registered metric of a task (the command line's choices)."""
    return [name for name, m in METRICS.items() if m.task == task]


def metrics_for(task: str, names: list[str] | tuple[str, ...] | None = None) -> dict[str, Metric]:
    """The metrics of a task: the named ones (checked), or those computed by default.

    Raises:
        ValueError: On an unknown name or a metric of another task.
    """
    of_task = {n: m for n, m in METRICS.items() if m.task == task}
    if names is None:
        return {n: m for n, m in of_task.items() if m.default}
    bad = [n for n in names if n not in of_task]
    if bad:
        raise ValueError(f"unknown {task} metric(s) {bad}; choose from {', '.join(of_task)}")
    return {n: of_task[n] for n in names}
