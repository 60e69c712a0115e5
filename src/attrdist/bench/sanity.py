"""Cascading-randomisation sanity check (Adebayo et al., 2018) of vanilla and VAR maps.

Per image and depth: a copy of the model with its top ``depth`` blocks re-initialised (the user's model is
never modified), the class set (top-k + least probable) and explained class (top-1) of that randomised
model, the raw maps of each method once (:class:`~attrdist.var.VAR`), and the similarity of its target map
to the original model's target map, vanilla and for each VAR variant from the same raw maps.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from ..metrics.base import metrics_for, metrics_of
from ..options import opt
from .base import Benchmark, ImageInput
from .config import RunConfig
from .registry import register_benchmark

if TYPE_CHECKING:
    from ..data.kinds import Dataset
    from ..models import LoadedModel
    from .store import ResultStore

__all__ = ["Sanity", "SanityConfig", "depths_of", "run_sanity"]


def _default_similarities() -> list[str]:
    from ..metrics.similarity import DEFAULT_SIMILARITIES

    return list(DEFAULT_SIMILARITIES)


@dataclass(kw_only=True)
class SanityConfig(RunConfig):
    """Configuration of a sanity-check run.

    The fields of :class:`~attrdist.bench.config.RunConfig`, and:

    Attributes:
        top_k: The class set is the ``top_k`` most probable classes plus the least probable one (of the
            randomised model).
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
    it is recorded as ``zeroed`` with its reason and left out of the means.
    """

    top_k: int = field(default=3, metadata=opt("class set: the top_k most probable classes and the least probable"))
    depths: int | None = field(default=6, metadata=opt("randomisation depths, evenly spaced (0 or unset: every one)"))
    similarities: list[str] = field(default_factory=_default_similarities, metadata=opt(
        "similarity measures, comma-separated", lambda: metrics_of("similarity")))
    blocks: str | list[str] = field(default="weights", metadata=opt(
        "blocks randomised top-down: 'weights' (those with a conv/linear/attention weight: logits first, then each "
        "block towards the input, as Adebayo et al.), 'all' (also normalisation-only modules such as ResNet's bn1) "
        "or comma-separated dotted module names; the run's stored config lists the names used"))


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
    def check(cls, config: SanityConfig, dataset: Dataset) -> None:
        """Unknown similarity measures fail before the model loads."""
        metrics_for("similarity", config.similarities)

    @classmethod
    def resolve(cls, config: SanityConfig, lm: LoadedModel) -> SanityConfig:
        """The block names randomised, from the output towards the input (stored with the run)."""
        from ..models.randomize import randomization_blocks

        return dataclasses.replace(config, blocks=randomization_blocks(lm.model, config.blocks))

    def score(self, item: str, prepared: ImageInput) -> list[tuple]:
        """The similarity of each target map to the original model's, per randomisation depth."""
        from ..metrics.similarity import similarities
        from ..models.randomize import randomized_copy

        c, blocks = self.cfg, list(self.cfg.blocks)
        x = prepared.x.to(c.device)
        classes = self.class_set(prepared)
        original = {k: m.double().cpu() for k, m in self.target_maps(x, classes).items()}
        rows: list[tuple] = []
        for d in depths_of(len(blocks), c.depths):
            model = None if d == 0 else randomized_copy(self.lm.model, d, c.seed, blocks)
            maps = original if model is None else {k: m.double().cpu()
                                                   for k, m in self.target_maps(x, classes, model).items()}
            unit = f"depth{d:03d}"
            for (name, variant), m in maps.items():
                rows.append((unit, name, variant, "fraction", d / len(blocks)))
                row, ok = self.scorable(f"{item}/{unit}/{name}/{variant}", unit, name, variant, m,
                                        original=original[(name, variant)])
                rows.append(row)
                if ok:
                    rows += [(unit, name, variant, k, v) for k, v in
                             similarities(original[(name, variant)].numpy(), m.numpy(), c.similarities).items()]
        return rows

    @staticmethod
    def report_unit(store: ResultStore) -> str | None:
        """The report's table shows the similarity once every block is randomised."""
        depths = sorted({r[1] for r in store.rows()})
        return depths[-1] if depths else None

    @staticmethod
    def plots(store: object, table: object, run_dir: Path) -> dict[str, Path]:
        """The similarity against the fraction of blocks randomised."""
        from .report import sanity_plot

        return sanity_plot(store, table, run_dir)


#: Run (or resume) the sanity check into a folder: ``run_sanity(config, out_dir, shard=None, lm=None)``.
run_sanity = Sanity.run
