"""Cascading-randomisation sanity check (Adebayo et al., 2018) of vanilla and VAR maps.

Per image and depth: the model with its top ``depth`` blocks re-initialised (the user's model is never
modified), the class set (top-k + least probable) and explained class (top-1) of that randomised model, the raw
maps of each method once (:class:`~attrdist.var.VAR`), and the similarity of its target map to the original
model's target map, vanilla and for each VAR variant from the same raw maps.

The randomised model is one copy for the whole run (:class:`~attrdist.models.randomize.RandomizedDepths`: each
block's weights drawn once, depth ``d + 1`` being depth ``d``'s model plus one more block), and the methods are
built for it once; a batch of images walks the depths together. Each image's time per depth is stored with it
(``depthNNN`` in :meth:`~attrdist.bench.store.ResultStore.timings`).
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from ..metrics.base import metrics_for, metrics_of
from ..options import opt
from .base import Benchmark, ImageInput
from .config import ImageRunConfig, RunConfig
from .records import FRACTION, ItemResult, Score, Skip, UnitAttribute, unit_values
from .registry import register_benchmark

if TYPE_CHECKING:
    from torch import Tensor

    from ..data.kinds import Dataset
    from ..methods import Attributor
    from ..models import LoadedModel
    from ..models.randomize import RandomizedDepths
    from .base import Rows
    from .report import Table
    from .store import ResultStore

__all__ = ["Sanity", "SanityConfig", "depths_of", "run_sanity"]


def _default_similarities() -> list[str]:
    return list(metrics_for("similarity"))


@dataclass(kw_only=True)
class SanityConfig(ImageRunConfig):
    """Configuration of a sanity-check run.

    The fields of :class:`~attrdist.bench.config.ImageRunConfig` (the class set: the ``top_k`` most probable
    classes of the randomised model and the least probable), and:

    Attributes:
        depths: Number of randomisation depths, evenly spaced from 0 to all blocks (``None``: every depth).
        similarities: Registered ``similarity`` metrics (default: the paper's Spearman with and without abs,
            SSIM and HOG-Pearson, plus Pearson and cosine; ``ssim_notebook`` and ``hog_spearman`` are the
            authors' notebook's).
        blocks: The blocks randomised, from the output towards the input: ``"weights"`` (default: the
            architecture's blocks that hold a conv, linear or attention weight; normalisation-only modules such
            as ResNet's ``bn1`` or EfficientNet's ``_bn0``/``_bn1`` are no block), ``"all"`` (those too, as in
            runs made before this option existed) or the dotted module names. A run stores the list of names it
            used here, so depth ``d`` means the first ``d`` names of the stored config.

    A map that cannot be compared (all zero, as when VAR keeps no pixel, or constant) gets no similarity:
    its :class:`~attrdist.bench.records.MapCheck` records the reason, and reports leave it out of the means.
    """

    depths: int | None = field(default=6, metadata=opt("randomisation depths, evenly spaced (0 or unset: every one)"))
    similarities: list[str] = field(default_factory=_default_similarities, metadata=opt(
        "similarity measures, comma-separated", lambda: metrics_of("similarity")))
    blocks: str | list[str] = field(default="weights", metadata=opt(
        "blocks randomised top-down: 'weights' (those with a conv/linear/attention weight: logits first, then each "
        "block towards the input, as Adebayo et al.), 'all' (also normalisation-only modules such as ResNet's bn1) "
        "or comma-separated dotted module names; the run's stored config lists the names used"))


def _skip(prepared: object) -> Skip:
    """An item the preparation skipped (anything else was computed)."""
    assert isinstance(prepared, Skip), prepared
    return prepared


def depths_of(n_blocks: int, count: int | None) -> list[int]:
    """Evenly spaced cumulative depths from 0 (original) to ``n_blocks`` (all randomised)."""
    if not count or count >= n_blocks + 1:
        return list(range(n_blocks + 1))
    return sorted({round(i * n_blocks / (count - 1)) for i in range(count)}) if count > 1 else [0]


@register_benchmark
class Sanity(Benchmark):
    """The similarity of each method's target map to the original model's, block by block randomised."""

    name = "sanity"
    config = SanityConfig
    summary = "cascading model randomisation (Adebayo et al.): similarity to the original map per depth"
    examples = ("attrdist bench sanity --dataset sample --out runs/sanity",
                "attrdist bench sanity --dataset imagenet:/data/imagenet/val --max-items 200 --out runs/sanity")
    cfg: SanityConfig

    @classmethod
    def check(cls, config: RunConfig, dataset: Dataset) -> None:
        """Unknown similarity measures fail before the model loads."""
        assert isinstance(config, SanityConfig)
        metrics_for("similarity", config.similarities)

    @classmethod
    def resolve(cls, config: RunConfig, lm: LoadedModel) -> SanityConfig:
        """The block names randomised, from the output towards the input (stored with the run)."""
        from ..models.randomize import randomization_blocks

        assert isinstance(config, SanityConfig)
        return dataclasses.replace(config, blocks=randomization_blocks(lm.model, config.blocks))

    @classmethod
    def estimate_plan(cls, config: RunConfig, lm: LoadedModel) -> tuple[RunConfig, float, str]:
        """An estimate times the original model and every block randomised (2 depths), scaled to the run's depths."""
        from ..models.randomize import randomization_blocks

        assert isinstance(config, SanityConfig)
        n = len(randomization_blocks(lm.model, config.blocks))
        full = len(depths_of(n, config.depths))
        if full <= 2:
            return config, 1.0, ""
        return (dataclasses.replace(config, depths=2), full / 2,
                f"2 of its {full} depths timed (the first and the last), scaled x{full / 2:g}")

    @cached_property
    def depths(self) -> list[int]:
        """The randomisation depths of the run, 0 (the original model) first."""
        return depths_of(len(self.cfg.blocks), self.cfg.depths)

    @cached_property
    def randomized(self) -> RandomizedDepths:
        """The run's one randomised copy of the model (every block's weights drawn once)."""
        from ..models.randomize import RandomizedDepths

        return RandomizedDepths(self.lm.model, list(self.cfg.blocks), self.cfg.seed)

    @cached_property
    def randomized_methods(self) -> dict[str, Attributor]:
        """The run's methods, built once for :attr:`randomized`'s copy (which moves from depth to depth)."""
        return self.methods_for(self.randomized.model)

    def progress_steps(self) -> int:
        """Every method at every depth."""
        return max(1, len(self.methods) * len(self.depths))

    def compute(self, batch: list[tuple[str, object]]) -> list[Rows]:
        """The similarity of each target map to the original model's, per randomisation depth, for a batch.

        The randomised copy moves to each depth once per batch; every image is explained on its own (the same
        numbers whatever the batch size).
        """
        c, n = self.cfg, len(self.cfg.blocks)
        inputs = [(item, prepared.x.to(c.device), self.class_set(prepared)) for item, prepared in batch
                  if isinstance(prepared, ImageInput)]
        original: dict[str, dict[tuple[str, str], Tensor]] = {}
        done = {item: ItemResult() for item, _, _ in inputs}
        for d in self.depths:
            self.doing = f"depth {d}/{n}"
            methods = None if d == 0 else self.randomized_methods
            start = time.perf_counter()
            if d > 0:
                self.randomized.at(d)
            moved = (time.perf_counter() - start) / max(1, len(inputs))
            for item, x, classes in inputs:
                start = time.perf_counter()
                maps = {k: m.double().cpu() for k, m in self.target_maps(x, classes, methods=methods).items()}
                if d == 0:
                    original[item] = maps
                done[item].extend(self._depth(item, d, maps, original[item]))
                done[item].timings[f"depth{d:03d}"] = moved + time.perf_counter() - start
        self.doing = ""
        return [done[item] if item in done else _skip(prepared) for item, prepared in batch]

    def _depth(self, item: str, d: int, maps: dict[tuple[str, str], Tensor],
               original: dict[tuple[str, str], Tensor]) -> ItemResult:
        """The records of one image at one depth: its fraction, and every map's check and similarities."""
        from ..metrics.similarity import similarities

        unit = f"depth{d:03d}"
        out = ItemResult(attributes=[UnitAttribute(item, unit, FRACTION, d / len(self.cfg.blocks))])
        for (name, variant), m in maps.items():
            check = self.check_map(item, unit, name, variant, m, original=original[(name, variant)])
            out.maps.append(check)
            if check.scorable:
                values = similarities(original[(name, variant)].numpy(), m.numpy(), self.cfg.similarities)
                out.scores += [Score(item, unit, name, variant, k, v) for k, v in values.items()]
        return out

    @staticmethod
    def report_unit(store: ResultStore) -> str | None:
        """The report's table shows the similarity once every block is randomised (the largest fraction)."""
        fractions = unit_values(store.unit_attributes(), FRACTION)
        return max(fractions, key=lambda u: (fractions[u], u)) if fractions else None

    @staticmethod
    def plots(store: ResultStore, table: Table, run_dir: Path) -> dict[str, Path]:
        """The similarity against the fraction of blocks randomised."""
        from .report import sanity_plot

        return sanity_plot(store, table, run_dir)


#: Run (or resume) the sanity check into a folder: ``run_sanity(config, out_dir, shard=None, lm=None)``.
run_sanity = Sanity.run
