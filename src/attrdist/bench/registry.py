"""The benchmark registry: every benchmark is a :class:`~attrdist.bench.base.Benchmark` subclass registered by name."""

from __future__ import annotations

from typing import TypeVar

from ..registry import Registry
from .base import Benchmark

__all__ = ["BENCHMARKS", "Benchmark", "register_benchmark"]

B = TypeVar("B", bound=type[Benchmark])

#: The benchmarks, the single list behind ``attrdist bench``, ``attrdist report`` and the docs.
BENCHMARKS: Registry[type[Benchmark]] = Registry("benchmark")


def register_benchmark(cls: B) -> B:
    """Register a benchmark class under its :attr:`~attrdist.bench.base.Benchmark.name` (a class decorator).

    Raises:
        TypeError: If it is not a :class:`~attrdist.bench.base.Benchmark` with a name and a configuration.
    """
    if not (isinstance(cls, type) and issubclass(cls, Benchmark) and getattr(cls, "name", None)
            and getattr(cls, "config", None)):
        raise TypeError("register_benchmark takes a Benchmark subclass that declares `name` and `config`")
    owner = cls.config.__dict__.get("benchmark")
    if owner not in (None, cls.name):
        raise TypeError(f"{cls.config.__name__} is the configuration of the {owner} benchmark; subclass it")
    BENCHMARKS.register(cls.name)(cls)
    cls.config.benchmark = cls.name  # stored with every run (the name is written once: in the benchmark)
    return cls
