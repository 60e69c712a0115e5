"""Run configurations: dataclasses loadable from YAML and saved beside every result.

Every field carries its one-line help (and choices) as metadata: the command line builds its options from
these fields, so an option is declared once.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from .._files import write_text_atomic
from ..options import BENCHMARK_METHODS, ModelOptions, opt, read_yaml
from ..presets import DEFAULT_PRESET, NORMALIZATION_NAMES, VARConfig, variant_config

if typing.TYPE_CHECKING:
    from ..methods import Attributor
    from .runner import Shard
    from .store import ResultStore

__all__ = ["ALL_VARIANTS", "DEFAULT_VARIANTS", "ImageRunConfig", "OpenRun", "RunConfig", "opt", "open_run",
           "write_yaml"]

#: The VAR variants computed by default beside vanilla (name -> preset and overrides).
DEFAULT_VARIANTS: dict[str, dict] = {"var": {"preset": DEFAULT_PRESET}}

#: ``--variants all``: the named presets of the paper and its authors' code, and each normalisation with the
#: paper's temperatures.
ALL_VARIANTS: dict[str, dict] = {
    "paper": {"preset": "paper"},
    "authors-code": {"preset": "authors-code"},
    **{f"paper+{n}": {"preset": "paper", "normalize": n} for n in NORMALIZATION_NAMES if n != "none"},
}

C = typing.TypeVar("C", bound="RunConfig")


@dataclass(kw_only=True)
class RunConfig(ModelOptions):
    """Fields every benchmark shares (and those of :class:`~attrdist.options.ModelOptions`).

    Attributes:
        dataset: What to run on, ``KIND[:ARG]`` (``sample`` needs no download; ``attrdist bench NAME --help``
            lists the kinds).
        methods: Method names.
        variants: VAR variants computed from the same raw maps: name -> ``{"preset": ..., overrides}``.
        seed: Seed of every random choice.
        max_items: Maximal number of items; ``None`` or 0: all.
        first_item: Items of the dataset's fixed order skipped before ``max_items`` are taken (the image
            benchmarks: insertion, sanity).
        batch_size: Items per forward pass (localisation); not stored: results agree up to float rounding.
        workers: Processes that prepare items while the model works; not stored.
    """

    dataset: str = field(default="sample", metadata=opt("what to run on, KIND[:ARG] (kinds below)"))
    methods: list[str] = field(default_factory=lambda: list(BENCHMARK_METHODS), metadata=opt(
        "comma-separated methods (attrdist methods --model NAME lists those that apply)"))
    variants: dict[str, dict] = field(default_factory=lambda: dict(DEFAULT_VARIANTS), metadata=opt(
        "VAR variants from the same raw maps: name=preset[+normalisation],... or 'all' (the preset study)"))
    seed: int = field(default=0, metadata=opt("seed of every random choice"))
    max_items: int | None = field(default=None, metadata=opt("at most this many items (0 or unset: all)"))
    first_item: int = field(default=0, metadata=opt(
        "skip this many items of the dataset's fixed order first (images benchmarks: fresh images for a new study)"))
    batch_size: int = field(default=1, metadata=opt(
        "items per forward pass where the benchmark batches them (localisation); results agree to float rounding"))
    workers: int = field(default=0, metadata=opt(
        "processes that decode and compose items while the model works (0: none)"))

    #: Name stored with the results: set by :func:`~attrdist.bench.registry.register_benchmark` to the name of
    #: the benchmark this configuration belongs to.
    benchmark: typing.ClassVar[str] = "benchmark"

    def __post_init__(self) -> None:
        if self.batch_size < 1 or self.workers < 0 or self.first_item < 0:
            raise ValueError("batch_size must be >= 1, workers and first_item >= 0")
        for name, spec in self.variants.items():
            if name == "vanilla":
                raise ValueError("'vanilla' names the raw maps; choose another variant name")
            try:
                variant_config(spec)
            except (ValueError, TypeError) as err:
                raise ValueError(f"VAR variant {name!r}: {err}") from None

    def class_set(self) -> str | None:
        """The class set of every item, where the configuration names one (default: none; the benchmark chooses)."""
        return None

    def variant_configs(self) -> dict[str, VARConfig]:
        """The VAR configuration of every variant, by name."""
        return {name: variant_config(spec) for name, spec in self.variants.items()}

    def to_dict(self) -> dict:
        """The stored configuration (without the device, batching and workers, which do not change results)."""
        d = dataclasses.asdict(self)
        for key in ("device", "trust_checkpoint", "batch_size", "workers"):  # they do not change results
            d.pop(key)
        return {"benchmark": self.benchmark, **d}

    def save(self, path: str | Path, **extra: object) -> None:
        """Write the configuration as YAML, with ``extra`` fields (the one writer of configuration files).

        ``trust_checkpoint`` is left out: a file never carries that consent.
        """
        write_yaml(path, {**shareable(self), **extra})

    @classmethod
    def load(cls: type[C], path: str | Path) -> C:
        """Read a YAML configuration.

        Raises:
            ValueError: On malformed YAML, a field the configuration does not have, a value of the wrong type,
                or ``trust_checkpoint: true`` (letting a checkpoint run code is the caller's decision, never a
                shared file's: pass ``--trust-checkpoint``).
        """
        try:
            data = read_yaml(Path(path).read_text()) or {}
        except yaml.YAMLError as err:
            raise ValueError(f"{path}: not valid YAML ({err})") from None
        if not isinstance(data, dict):
            raise ValueError(f"{path}: a configuration is a mapping of fields, got {type(data).__name__}")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known - {"benchmark", "method_settings"})  # a run's config.yaml loads back
        if unknown:
            raise ValueError(f"{path}: unknown field(s) {unknown} for the {cls.benchmark} benchmark")
        if data.pop("trust_checkpoint", False):  # `false` (in configs saved before) changes nothing
            raise ValueError(f"{path}: trust_checkpoint cannot come from a configuration file (it lets a "
                             "checkpoint run code); pass --trust-checkpoint on the command line")
        data.pop("benchmark", None)
        data.pop("method_settings", None)  # what a run recorded of its methods: derived, not configured
        hints = typing.get_type_hints(cls)
        for name, value in data.items():
            if not _fits(value, hints[name]):
                want = hints[name].__name__ if isinstance(hints[name], type) else str(hints[name])
                raise ValueError(f"{path}: field {name!r} must be {want}, got {value!r}")
        try:
            return cls(**data)
        except TypeError as err:
            raise ValueError(f"{path}: {err}") from None

    @property
    def limit(self) -> int | None:
        """``max_items`` with 0 read as no limit."""
        return self.max_items if self.max_items and self.max_items > 0 else None

    def take(self, items: list) -> list:
        """The items this run scores: ``max_items`` of them from ``first_item`` on."""
        end = None if self.limit is None else self.first_item + self.limit
        return items[self.first_item:end]


@dataclass(kw_only=True)
class ImageRunConfig(RunConfig):
    """A benchmark on single images whose class set is the ``top_k`` most probable classes and the least probable.

    Attributes:
        top_k: How many of the most probable classes the class set holds (then the least probable one).
    """

    top_k: int = field(default=3, metadata=opt("class set: the top_k most probable classes and the least probable"))

    def class_set(self) -> str:
        """``top{top_k}+worst``."""
        return f"top{self.top_k}+worst"


def write_yaml(path: str | Path, data: dict) -> None:
    """Write a mapping as YAML in field order (a new file renamed over the name: a link there is not followed)."""
    write_text_atomic(path, yaml.safe_dump(data, sort_keys=False))


def shareable(config: ModelOptions) -> dict:
    """A configuration dataclass as plain values for a file, without ``trust_checkpoint``."""
    d = dataclasses.asdict(config)
    d.pop("trust_checkpoint", None)
    return d


def _fits(value: object, hint: object) -> bool:
    """Whether a value read from YAML has the field's type (shallow: containers are not looked into)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return any(_fits(value, a) for a in args)
    if origin is typing.Literal:
        return value in args
    base = origin or hint
    if base is type(None):
        return value is None
    if base is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if base is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if base in (list, tuple):  # and each element (list[str]: no mapping among the method names)
        return isinstance(value, (list, tuple)) and (not args or args[-1] is Ellipsis and _fits_all(value, args[0])
                                                     or len(args) == 1 and _fits_all(value, args[0]))
    if base is dict:
        return isinstance(value, dict) and (len(args) != 2 or _fits_all(value, args[0])
                                            and _fits_all(value.values(), args[1]))
    return isinstance(value, base) if isinstance(base, type) else True


def _fits_all(values: typing.Iterable, hint: object) -> bool:
    return all(_fits(v, hint) for v in values)


@dataclass
class OpenRun(typing.Generic[C]):
    """A run folder opened by :func:`open_run`.

    Attributes:
        store: This process's store (its own part of the folder), bound to the configuration.
        config: The configuration, on this process's device.
        done: The items the folder held when the run started (every part), which the run skips.
    """

    store: ResultStore
    config: C
    done: set[str]


def open_run(config: C, out_dir: str | Path, shard: Shard,
             methods: dict[str, Attributor] | None = None) -> OpenRun[C]:
    """Open (or resume) a run folder: this process's part of the store, bound to the configuration.

    Every process reads what the folder's parts hold (read-only) and waits for the others before it opens its own
    part (:func:`~attrdist.bench.store.part_path`) for writing, so that no file is read by one machine while
    another writes it.

    Args:
        config: The run's configuration.
        out_dir: The run folder.
        shard: This process's shard.
        methods: The built methods: their :meth:`~attrdist.methods.Attributor.settings` (every option, defaults
            included) are stored with the configuration as ``method_settings``.

    Raises:
        ConfigMismatchError: If the folder holds a run of another configuration.
    """
    from .runner import barrier
    from .store import ResultStore, part_path, read_done

    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ValueError(f"{out}: a file, not a run folder (choose another --out)")
    settings = {"method_settings": {n: m.settings() for n, m in methods.items()}} if methods else {}
    stored = {**config.to_dict(), **settings}
    done = read_done(out, stored) if out.is_dir() else set()  # every process reads before any of them writes
    barrier(shard)
    out.mkdir(parents=True, exist_ok=True)
    store = ResultStore(part_path(out, shard.rank))  # this process's own file: none is written by two
    store.bind_config(stored)
    if shard.rank == 0:
        config.save(out / "config.yaml", **settings)
    return OpenRun(store, dataclasses.replace(config, device=shard.device(config.device)), done)
