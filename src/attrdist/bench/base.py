"""The benchmark base: the pipeline every benchmark shares, and the hooks a benchmark overrides.

:meth:`Benchmark.run` owns the pipeline: it opens the dataset (checking that it offers what the benchmark
:attr:`~Benchmark.needs`), loads the model, builds the methods (an unknown method or option fails before any
folder is made), opens the run folder (its configuration and every method's settings stored), records the facts a
report's header shows, and hands the items to the resumable runner. Per item, :meth:`Benchmark.attribute` makes
one :class:`~attrdist.var.VAR` call per method and derives vanilla and every VAR variant from the same raw maps
(:meth:`~attrdist.var.VARResult.variants`); :meth:`Benchmark.scorable` applies the one definition of a map that
cannot be scored (:func:`~attrdist.metrics.checks.unscorable`) and records it.

A benchmark is a subclass that declares its :attr:`~Benchmark.name`, :attr:`~Benchmark.config` and
:attr:`~Benchmark.needs` once, and overrides what differs: :meth:`~Benchmark.items`, :meth:`~Benchmark.prepare`,
:meth:`~Benchmark.class_set` and :meth:`~Benchmark.score` (or :meth:`~Benchmark.compute` for batches). Register it
with :func:`~attrdist.bench.registry.register_benchmark` (``docs/extending.md`` shows one in 40 lines).

Before a long run, :meth:`Benchmark.estimate` runs a few items into a temporary folder and projects the time and
disk of the whole run (``attrdist bench NAME ... --estimate``); a run says first what it is about to do, and its
progress bar moves per method (:class:`~attrdist.bench.runner.Progress`).

Heavy libraries (torch, the models and methods) are imported when a benchmark runs, not when this module is
imported: the command line lists the benchmarks and their options without them.
"""

from __future__ import annotations

import dataclasses
import datetime
import math
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from .config import RunConfig
from .records import ItemResult, MapCheck, Skip
from .runner import Progress, Shard, duration_text
from .store import ResultStore

if TYPE_CHECKING:
    from torch import Tensor, nn

    from ..classes import ClassesLike
    from ..data.kinds import Dataset, ImageItem
    from ..methods import Attributor
    from ..models import LoadedModel
    from ..var import VARResult
    from .report import Table

__all__ = ["Benchmark", "Estimate", "ImageInput", "Rows", "RunResult"]

#: What a benchmark returns for one item: its records (:class:`~attrdist.bench.records.ItemResult`), or why it is
#: skipped as a whole (:class:`~attrdist.bench.records.Skip`).
Rows = ItemResult | Skip


@dataclass
class ImageInput:
    """A prepared image: what the model sees of it.

    Attributes:
        shown: The RGB image the model sees (after its resize and centre crop).
        x: Its normalised tensor ``[1, 3, H, W]``.
    """

    shown: Any
    x: Tensor


@dataclass(frozen=True)
class Estimate:
    """What a whole run would take, projected from a few items (:meth:`Benchmark.estimate`).

    Attributes:
        benchmark: The benchmark's name.
        items: Items the run scores (this process's shard).
        done: Of those, items the run folder already holds (a resumed run skips them).
        measured: Items timed (after one warm-up item, which is not counted).
        seconds_per_item: Wall time per item (model, VAR, metrics, store).
        bytes_per_item: Growth of the run's store per item.
        stages: Mean seconds per item of each stage the benchmark records (the sanity check: per depth).
        spread: Half the range of the timed items' times, relative to their mean (nan with one item timed): the
            estimate's own uncertainty, beside what items of another size or content cost.
        scaled: How the timed items stand for the run's (:meth:`Benchmark.estimate_plan`), when they do not
            run the whole configuration (the sanity check: 2 of its depths).
    """

    benchmark: str
    items: int
    done: int
    measured: int
    seconds_per_item: float
    bytes_per_item: float
    stages: dict[str, float] = dataclasses.field(default_factory=dict)
    spread: float = math.nan
    scaled: str = ""

    @property
    def seconds(self) -> float:
        """Projected wall time of the items left."""
        return self.seconds_per_item * (self.items - self.done)

    @property
    def bytes(self) -> float:
        """Projected disk of the whole run folder's store."""
        return self.bytes_per_item * self.items

    def __str__(self) -> str:
        todo = self.items - self.done
        spread = "" if math.isnan(self.spread) else f" (+-{self.spread:.0%} between the items timed)"
        scaled = f"; {self.scaled}" if self.scaled else ""
        lines = [f"{self.benchmark}: {self.items:,} items ({todo:,} to do), measured on {self.measured} after one "
                 f"warm-up{scaled}: {self.seconds_per_item:.2f} s{spread} and {self.bytes_per_item / 1024:.1f} KiB "
                 f"per item",
                 f"  projected time: {duration_text(self.seconds)} ({3600 / max(self.seconds_per_item, 1e-9):,.0f} "
                 f"items/h); disk: {_size(self.bytes)}"]
        lines += [f"  {stage}: {seconds:.2f} s per item" for stage, seconds in self.stages.items()]
        return "\n".join(lines)


@dataclass(frozen=True)
class Estimates:
    """The estimate of each run of a benchmark (one; a suite: one per benchmark of it), and their total.

    Attributes:
        benchmark: The benchmark's name.
        runs: One :class:`Estimate` per run.
    """

    benchmark: str
    runs: list[Estimate]

    @property
    def seconds(self) -> float:
        """Projected wall time of every run's items left."""
        return sum(e.seconds for e in self.runs)

    def __str__(self) -> str:
        lines = [str(e) for e in self.runs]
        if len(self.runs) > 1:
            lines.append(f"{self.benchmark}: projected time of all its runs {duration_text(self.seconds)}")
        return "\n".join(lines)


@dataclass
class RunResult:
    """What :meth:`Benchmark.run` leaves: the run folder and the open store of each of its runs.

    Attributes:
        benchmark: The benchmark that ran (a suite: the suite).
        folder: The run folder.
        stores: Subfolder (``""``: the folder itself) -> the open store of that run.
    """

    benchmark: type[Benchmark]
    folder: Path
    stores: dict[str, ResultStore]

    @property
    def store(self) -> ResultStore:
        """The store of a benchmark with one run."""
        if len(self.stores) != 1:
            raise ValueError(f"{self.benchmark.name} made {len(self.stores)} runs: read them from .stores")
        return next(iter(self.stores.values()))

    def text(self) -> str:
        """What ``attrdist bench`` prints after the run (:meth:`Benchmark.result_text`)."""
        return self.benchmark.result_text(self)

    def close(self) -> None:
        """Close every store."""
        for store in self.stores.values():
            store.close()

    def __enter__(self) -> RunResult:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _size(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


class Benchmark:
    """Base of every benchmark: the shared pipeline (:meth:`run`) and the hooks a benchmark overrides.

    A subclass declares, once:

    Attributes:
        name: The name (``attrdist bench NAME``), stored with every run.
        config: Its configuration dataclass (a :class:`~attrdist.bench.config.RunConfig`; every field's help is
            its command-line option).
        needs: Dataset capabilities, any one of which the benchmark can run on (``images``, ``labels``,
            ``grids``, ``objects``): checked before the model loads, and the error names the kinds that have it.
        summary: One line for ``attrdist bench --help``.
        examples: Example command lines for its ``--help``.

    and overrides what differs from scoring single images with the ``top_k + worst`` class set:
    :meth:`items`, :meth:`prepare`, :meth:`class_set`, :meth:`score` (or :meth:`compute` to score a batch), and
    the report hooks :meth:`report_unit` and :meth:`plots`.

    An instance is one run: :attr:`cfg` (the configuration, on this process's device), :attr:`lm` (the
    model), :attr:`methods` (built methods by name), :attr:`store`, :attr:`dataset` and :attr:`variants`
    (VAR configurations by variant name).
    """

    name: ClassVar[str]
    config: ClassVar[type[RunConfig]]
    needs: ClassVar[tuple[str, ...]] = ("images",)
    summary: ClassVar[str] = ""
    examples: ClassVar[tuple[str, ...]] = ()

    def __init__(self, cfg: RunConfig, lm: LoadedModel, store: ResultStore | None, methods: dict[str, Attributor],
                 dataset: Dataset) -> None:
        self.cfg, self.lm, self.store, self.methods, self.dataset = cfg, lm, store, methods, dataset
        self.variants = cfg.variant_configs()
        #: The run's progress bar (no bar outside a run): :meth:`attribute` moves it per method.
        self.progress = Progress()
        #: What the current step belongs to, shown beside the method on the progress bar (``depth 3/19``).
        self.doing = ""

    # the pipeline ----------------------------------------------------------------------------------------

    @classmethod
    def runs(cls, config: RunConfig) -> dict[str, tuple[type[Benchmark], RunConfig]]:
        """The runs of a configuration: subfolder -> (benchmark, its configuration).

        One run in the run folder itself (``""``) by default; a suite (the variant study) runs several benchmarks,
        each in its own subfolder. :meth:`run`, :meth:`estimate` and ``attrdist report`` treat both alike.
        """
        return {"": (cls, config)}

    @classmethod
    def run(cls, config: RunConfig, out_dir: str | Path, shard: Shard | None = None, lm: LoadedModel | None = None,
            on_item: Callable[[str], None] | None = None, announce: bool = True) -> RunResult:
        """Run (or resume) the benchmark (each run of :meth:`runs`) into ``out_dir``, then :meth:`finish`.

        Args:
            config: The configuration (an instance of :attr:`config`).
            out_dir: The run folder (``results.sqlite``, ``config.yaml``; a suite: a subfolder per run).
            shard: This process's shard (default: from torchrun's environment).
            lm: A loaded model to reuse (default: loaded from the configuration, once for all runs).
            on_item: Called after each item is computed (tests use it to simulate a crash).
            announce: Print the line saying what a run is about to compute (an estimate prints its own).

        Returns:
            The :class:`RunResult`: the run folder and the open store of each run.

        Raises:
            ValueError: On a dataset, method, option or configuration the benchmark cannot run (before the run
                folder is made).
            ConfigMismatchError: If the folder holds a run of another configuration.
        """
        from .runner import current_shard

        if not isinstance(config, cls.config):
            raise TypeError(f"the {cls.name} benchmark takes a {cls.config.__name__}, got {type(config).__name__}")
        shard = shard or current_shard()
        plans = cls.runs(config)  # every configuration is checked before anything runs
        if len(plans) > 1 and lm is None:
            from ..models import load_model

            lm = load_model(config.model, config.weights, trust_checkpoint=config.trust_checkpoint)
        out = Path(out_dir)
        result = RunResult(cls, out, {})
        for sub, (bench, cfg) in plans.items():
            result.stores[sub] = bench.run_one(cfg, out / sub if sub else out, shard, lm, on_item, announce)
        if shard.rank == 0:
            cls.finish(config, result)
        return result

    @classmethod
    def finish(cls, config: RunConfig, result: RunResult) -> None:
        """What follows the runs, in the first process (default: nothing; the study analyses its runs here)."""

    @classmethod
    def run_one(cls, config: RunConfig, out_dir: str | Path, shard: Shard, lm: LoadedModel | None = None,
                on_item: Callable[[str], None] | None = None, announce: bool = True) -> ResultStore:
        """Run (or resume) this benchmark alone into ``out_dir`` (:meth:`run` does so for each of its runs).

        Returns:
            The open store.
        """
        from ..version import __version__
        from .config import open_run
        from .runner import run_batches

        bench = cls.build(config, lm)  # everything is checked before the run folder is made
        opened = open_run(cls.resolve(bench.cfg, bench.lm), out_dir, shard, bench.methods)
        store, bench.cfg = opened.store, opened.config
        bench.store = store
        bench.lm.model.to(bench.cfg.device)
        items = bench.items()
        if shard.rank == 0:
            started = store.info().get("started") or datetime.datetime.now(datetime.UTC).isoformat(
                timespec="seconds")
            store.set_info(attrdist=__version__, started=started, dataset_size=bench.dataset_size(),
                           items=len(items))
            if announce:
                print(bench.describe(len(items), len(opened.done & set(items)), out_dir), file=sys.stderr,
                      flush=True)

        def compute(batch: list[tuple[str, object]]) -> list[Rows]:
            out = bench.compute(batch)
            for item, _ in batch:
                if on_item:
                    on_item(item)
            return out

        run_batches(store, items, bench.prepare, compute, shard, desc=cls.name, batch_size=bench.cfg.batch_size,
                    workers=bench.cfg.workers, batch_key=bench.batch_key, progress=bench.progress, done=opened.done)
        return store

    def describe(self, items: int, done: int, out_dir: str | Path) -> str:
        """The line a run starts with: what it is about to compute, on what, and where."""
        c = self.cfg
        variants = ", ".join(["vanilla", *self.variants])
        return (f"{self.name}: {items:,} items of {c.dataset} ({items - done:,} to do), model {c.model} on {c.device}, "
                f"{len(self.methods)} method(s) ({', '.join(self.methods)}) x {len(self.variants) + 1} variant(s) "
                f"({variants}); run folder {out_dir}")

    @classmethod
    def estimate(cls, config: RunConfig, out_dir: str | Path | None = None, items: int = 2,
                 lm: LoadedModel | None = None) -> Estimates:
        """Project the time and disk of a whole run (each run of :meth:`runs`) from a few of its items.

        Each run's first ``items`` items after its first batch are timed in a temporary folder (the first batch
        warms up: it pays for the one-time measurements, and is not counted); nothing is written to ``out_dir``,
        whose stored items (a run to resume) are subtracted from the time left.

        Args:
            config: The configuration.
            out_dir: The run folder the run would use (read only, if it exists).
            items: Items timed after the warm-up item.
            lm: A loaded model to reuse.

        Returns:
            The :class:`Estimates` (``str()`` of it is what ``attrdist bench NAME ... --estimate`` prints).

        Raises:
            ValueError: As :meth:`run`, before anything is computed.
        """
        if items < 1:
            raise ValueError(f"an estimate times at least one item, got {items}")
        plans = cls.runs(config)
        if len(plans) > 1 and lm is None:
            from ..models import load_model

            lm = load_model(config.model, config.weights, trust_checkpoint=config.trust_checkpoint)
        out = None if out_dir is None else Path(out_dir)
        return Estimates(cls.name, [bench.estimate_one(cfg, None if out is None else out / sub if sub else out, items,
                                                       lm) for sub, (bench, cfg) in plans.items()])

    @classmethod
    def estimate_one(cls, config: RunConfig, out_dir: Path | None, items: int,
                     lm: LoadedModel | None = None) -> Estimate:
        """The :class:`Estimate` of this benchmark alone (:meth:`estimate` makes one per run)."""
        import tempfile

        bench = cls.build(config, lm)
        timed, scale, scaled = cls.estimate_plan(config, bench.lm)
        all_items = bench.items()
        done = 0
        stored = out_dir / "results.sqlite" if out_dir is not None else None
        if stored is not None and stored.is_file():
            with ResultStore(stored, read_only=True) as old:
                done = len(old.done() & set(all_items))
        warm = max(1, config.batch_size)  # the first batch warms up (one-time measurements)
        few = min(items + warm, len(all_items))
        stamps: list[float] = []
        print(f"{cls.name}: estimating from {few - min(warm, few) or few} item(s) after a warm-up of {warm}, run "
              f"into a temporary folder (nothing is written to {out_dir or 'the run folder'}); the run: "
              f"{bench.describe(len(all_items), done, out_dir or '-').split(': ', 1)[1]}", file=sys.stderr, flush=True)
        with tempfile.TemporaryDirectory(prefix="attrdist-estimate-") as tmp:
            start = time.perf_counter()
            store = cls.run_one(dataclasses.replace(timed, max_items=few), tmp, Shard(), lm=bench.lm,
                                on_item=lambda _: stamps.append(time.perf_counter()), announce=False)
            stages = {k: v for k, (v, _) in store.timings().items() if k != "item"}
            store.close()
            disk = _store_bytes(Path(tmp))
        measured, seconds, spread = _per_item(stamps, warm, start)
        return Estimate(cls.name, len(all_items), done, measured, seconds * scale, _per_byte(disk, stamps) * scale,
                        stages, spread, scaled)

    @classmethod
    def estimate_plan(cls, config: RunConfig, lm: LoadedModel) -> tuple[RunConfig, float, str]:
        """What an estimate times instead of the whole configuration, and the factor to the real items' cost.

        Default: the configuration itself (factor 1). The sanity check times 2 of its depths and scales by the
        number of depths.

        Returns:
            ``(configuration timed, factor, how it is scaled in words)``.
        """
        return config, 1.0, ""

    @classmethod
    def build(cls, config: RunConfig, lm: LoadedModel | None = None) -> Benchmark:
        """The benchmark of a configuration, without a run folder: its items and inputs can be inspected.

        Opens the dataset (checking that it offers what the benchmark :attr:`needs`), checks the configuration,
        loads the model (unless given) and builds the methods.

        Raises:
            TypeError: If the configuration is not the benchmark's.
            ValueError: On a dataset, method, option or configuration the benchmark cannot run.
        """
        from ..data.kinds import open_dataset
        from ..methods import get_method
        from ..models import load_model

        if not isinstance(config, cls.config):
            raise TypeError(f"the {cls.name} benchmark takes a {cls.config.__name__}, got {type(config).__name__}")
        dataset = open_dataset(config.dataset, needs=cls.needs)
        cls.check(config, dataset)
        lm = lm or load_model(config.model, config.weights, trust_checkpoint=config.trust_checkpoint)
        methods = {m: get_method(m, lm, **config.method_kwargs(m)) for m in config.methods}
        return cls(config, lm, None, methods, dataset)

    @classmethod
    def check(cls, config: RunConfig, dataset: Dataset) -> None:
        """Refuse a configuration before the model loads (default: every option is checked by its dataclass)."""

    @classmethod
    def resolve(cls, config: RunConfig, lm: LoadedModel) -> RunConfig:
        """The configuration stored with the run, with what depends on the model filled in (default: as given)."""
        return config

    # hooks -----------------------------------------------------------------------------------------------

    @cached_property
    def _images(self) -> dict[str, ImageItem]:
        """The dataset's single images by id."""
        return {it.id: it for it in self.dataset.images()}

    def all_items(self) -> list[str]:
        """Every item id the dataset offers, in a deterministic order (default: its single images)."""
        return list(self._images)

    def items(self) -> list[str]:
        """The items this run scores (default: ``max_items`` of :meth:`all_items` from ``first_item`` on)."""
        self._all = self.all_items()
        return self.cfg.take(self._all)

    def dataset_size(self) -> int:
        """How many items the dataset offers (a report's header shows it)."""
        return len(self._all)

    def prepare(self, item: str) -> object:
        """The input of one item, made in a worker process while the model works (default: :class:`ImageInput`)."""
        from ..data.prepare import model_input

        shown, x = model_input(self._images[item].load(), self.lm.preprocess)
        return ImageInput(shown, x)

    def batch_key(self, prepared: object) -> object:
        """Items go into one :meth:`compute` call only while this key is equal (default: the input's shape)."""
        x = getattr(prepared, "x", None)
        return None if x is None else tuple(x.shape)

    def class_set(self, prepared: object) -> ClassesLike | Tensor:
        """The class set of an item (default: the configuration's, :meth:`~attrdist.bench.config.RunConfig.class_set`).

        Raises:
            NotImplementedError: If the configuration names none and the benchmark does not override this.
        """
        spec = self.cfg.class_set()
        if spec is None:
            raise NotImplementedError(f"{type(self).__name__}: its configuration names no class set (derive it "
                                      "from ImageRunConfig) and it does not override class_set()")
        return spec

    def compute(self, batch: list[tuple[str, object]]) -> list[Rows]:
        """The results of a batch of prepared items (default: :meth:`score` for each)."""
        return [self.score(item, prepared) for item, prepared in batch]

    def score(self, item: str, prepared: object) -> Rows:
        """The rows of one item (every benchmark that does not override :meth:`compute` overrides this)."""
        raise NotImplementedError(f"{type(self).__name__} overrides neither score() nor compute()")

    # building blocks -------------------------------------------------------------------------------------

    def attribute(self, x: Tensor, classes: ClassesLike | Tensor, model: nn.Module | None = None,
                  methods: dict[str, Attributor] | None = None) -> Iterator[tuple[str, VARResult]]:
        """One :class:`~attrdist.var.VAR` result per method, refined by the first variant.

        The raw maps of the class set are computed once per method; every other variant comes from them through
        :meth:`~attrdist.var.VARResult.variants`.

        Args:
            x: The input batch, on the run's device.
            classes: The class set (a spec, a list or a ``[B, K]`` tensor).
            model: Another model to explain with the same methods and options (built for it on every call);
                default: the run's model.
            methods: The run's methods built once for another model (:meth:`methods_for`: the sanity check's
                randomised copy); default: the run's methods (or those of ``model``).
        """
        from ..var import VAR

        preset = next(iter(self.variants.values()), None)
        if methods is None:
            methods = self.methods if model is None else self.methods_for(model)
        for name, method in methods.items():
            result = VAR(method, classes=classes, preset=preset).attribute(x)
            self.progress.step(x.shape[0] / self.progress_steps(), f"{self.doing} {name}".strip())
            yield name, result

    def methods_for(self, model: nn.Module) -> dict[str, Attributor]:
        """The run's methods, with their options, built for another model (built again on every call)."""
        from ..methods import get_method

        lm = dataclasses.replace(self.lm, model=model)
        return {name: get_method(name, lm, **self.cfg.method_kwargs(name)) for name in self.methods}

    def progress_steps(self) -> int:
        """Calls of :meth:`attribute`'s methods per item (the progress bar's steps; default: one per method)."""
        return max(1, len(self.methods))

    def target_maps(self, x: Tensor, classes: ClassesLike | Tensor, model: nn.Module | None = None,
                    methods: dict[str, Attributor] | None = None) -> dict[tuple[str, str], Tensor]:
        """The target's map of the first sample, vanilla and every variant: ``(method, variant) -> [H, W]``."""
        return {(name, variant): m[0] for name, result in self.attribute(x, classes, model, methods)
                for variant, m in result.variants(self.variants, target=True).items()}

    def check_map(self, item: str, unit: str, method: str, variant: str, m: Tensor,
                  original: Tensor | None = None) -> MapCheck:
        """Whether a map can be scored (:func:`~attrdist.metrics.checks.degenerate`: the one definition), and why not.

        Args:
            item: The item.
            unit: The map's unit.
            method: The map's method.
            variant: The map's variant.
            m: The map.
            original: A map it is compared with (the sanity check's original): it must be scorable too.

        Returns:
            The map's :class:`~attrdist.bench.records.MapCheck`: add it to the item's
            :attr:`~attrdist.bench.records.ItemResult.maps`, and score the map only if it is ``scorable``;
            ``attrdist report`` counts the others and leaves them out of every mean.
        """
        from ..metrics.checks import degenerate

        why = degenerate(original) if original is not None else None
        why = f"original {why}" if why else degenerate(m)
        return MapCheck(item, unit, method, variant, why)

    # report hooks ----------------------------------------------------------------------------------------

    @classmethod
    def result_text(cls, result: RunResult) -> str:
        """What ``attrdist bench`` prints after a run (default: the report's tables of each of its stores)."""
        from .report import markdown, summarize

        return "\n".join(markdown(summarize(store, unit=cls.report_unit(store))) for store in result.stores.values())

    @staticmethod
    def report_unit(store: ResultStore) -> str | None:
        """The unit the report's table summarises (default: every unit)."""
        return None

    @staticmethod
    def plots(store: ResultStore, table: Table, run_dir: Path) -> dict[str, Path]:
        """The benchmark's figures for ``attrdist report`` (default: none)."""
        return {}


def _store_bytes(folder: Path) -> int:
    return sum(f.stat().st_size for f in folder.glob("results.sqlite*") if f.is_file())


def _per_item(stamps: list[float], warm: int, start: float) -> tuple[int, float, float]:
    """``(items measured, seconds per item, spread)`` from the times items finished, without the warm-up batch.

    The spread is half the range of the timed items' times relative to their mean (nan with fewer than 2).
    """
    timed = len(stamps) - min(warm, len(stamps))
    if timed <= 0:
        return len(stamps), (stamps[-1] - start) / len(stamps) if stamps else 0.0, math.nan
    each = [b - a for a, b in zip(stamps[warm - 1:], stamps[warm:], strict=False)]
    mean = (stamps[-1] - stamps[warm - 1]) / timed
    spread = (max(each) - min(each)) / 2 / mean if len(each) > 1 and mean > 0 else math.nan
    return timed, mean, spread


def _per_byte(disk: int, stamps: list[float]) -> float:
    """The store's growth per item: its size without what an empty store takes."""
    import tempfile

    with tempfile.TemporaryDirectory(prefix="attrdist-estimate-") as tmp:
        ResultStore(Path(tmp) / "results.sqlite").close()
        empty = _store_bytes(Path(tmp))
    return max(disk - empty, 0) / max(len(stamps), 1)
