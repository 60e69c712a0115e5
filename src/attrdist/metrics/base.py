"""The metric registry: every metric a benchmark stores, with the direction that makes it better.

A metric is a pure function registered under the name its results are stored by, with its task (which
benchmark computes it and what it is given) and ``higher_is_better``, which the report reads to tell an
improvement from a regression. Tasks and their functions:

* ``localization``: ``fn(maps, masks, binary) -> [N]`` with the smoothed positive maps ``[N, H, W]``, the
  boolean regions and the binarised maps;
* ``similarity``: ``fn(a, b) -> float`` for two maps ``[H, W]`` (sanity checks);
* ``insertion`` and ``count``: computed inside their benchmark (``fn`` is ``None``); registered for their
  direction.

The built-in metrics are declared in :mod:`attrdist.metrics.catalog` with a :class:`Deferred` function (imported
with its module when first used): their names, tasks and directions (the command line's choices, the report's
reading) cost no import of torch. A metric of one's own registers a function with :func:`register_metric`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final, Literal, TypeAlias

from ..registry import Registry

if TYPE_CHECKING:
    import numpy as np
    from torch import Tensor

__all__ = [
    "BINARIZATION_RULES",
    "METRICS",
    "Deferred",
    "PAPER_BORDER",
    "PAPER_KERNEL",
    "PAPER_SIGMA",
    "Binarization",
    "LocalizationFn",
    "Metric",
    "MetricFn",
    "SimilarityFn",
    "metrics_for",
    "metrics_of",
    "register_metric",
]

#: A localisation metric's function: ``fn(maps, masks, binary) -> [N]``.
LocalizationFn: TypeAlias = "Callable[[Tensor, Tensor, Tensor], Tensor]"
#: A similarity measure's function: ``fn(a, b) -> float`` for two maps ``[H, W]``.
SimilarityFn: TypeAlias = "Callable[[Tensor | np.ndarray, Tensor | np.ndarray], float]"
#: Any metric's function (its task says which of the above).
MetricFn: TypeAlias = "LocalizationFn | SimilarityFn"

#: The paper's smoothing (appendix B): an 11x11 Gaussian. Sigma and border follow the VAR authors' demo, which
#: calls OpenCV's ``GaussianBlur(map, (11, 11), 0)``: sigma ``0.3 * ((11 - 1) * 0.5 - 1) + 0.8 = 2.0`` and
#: reflect-101 borders.
PAPER_KERNEL: Final = 11
PAPER_SIGMA: Final = 2.0
PAPER_BORDER: Final = "reflect"

#: Binarisation rules of a map's positive part (:data:`attrdist.metrics.localization.BINARIZATIONS` implements
#: them): ``A+ > value * mean(A+)``, ``A+ > value * max(A+)``, the ``|R|`` highest pixels.
Binarization = Literal["mean", "max_fraction", "region_size"]
BINARIZATION_RULES: tuple[Binarization, ...] = ("mean", "max_fraction", "region_size")


@dataclass(frozen=True)
class Deferred:
    """A metric's function that lives in a module imported on first use: ``load()`` imports it and returns it."""

    load: Callable[[], MetricFn]


@dataclass(frozen=True)
class Metric:
    """A registered metric.

    Attributes:
        name: The name results are stored under.
        task: ``localization``, ``similarity``, ``insertion`` or ``count``.
        higher_is_better: Direction of improvement.
        function: The function (see the module docstring), a :class:`Deferred` one (imported on first use), or
            ``None`` where the benchmark computes it.
        summary: One line for the docs and the report.
        default: Computed unless a run names its metrics.
        relative: The report shows changes against vanilla in percent (``False``: as differences, for metrics
            that live around 0, such as correlations).
    """

    name: str
    task: str
    higher_is_better: bool
    function: MetricFn | Deferred | None = None
    summary: str = ""
    default: bool = True
    relative: bool = True

    @property
    def fn(self) -> MetricFn | None:
        """The metric's function (imported from its module on first use), or ``None``."""
        return self.function.load() if isinstance(self.function, Deferred) else self.function


#: Every metric, the single list the benchmarks, the report and the docs read.
METRICS: Registry[Metric] = Registry("metric")


def register_metric(name: str, *, task: str, higher_is_better: bool, summary: str = "", default: bool = True,
                    relative: bool = True) -> Callable[[MetricFn | None], MetricFn | None]:
    """Register the decorated function as metric ``name`` (returns the function unchanged).

    Example:
        >>> @register_metric("inside_max", task="localization", higher_is_better=True)  # doctest: +SKIP
        ... def inside_max(maps, masks, binary):
        ...     return (maps * masks).flatten(1).amax(1) / maps.flatten(1).amax(1)
    """

    def decorate(fn: MetricFn | None) -> MetricFn | None:
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
