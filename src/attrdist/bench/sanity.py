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

import numpy as np

from ..data.kinds import open_dataset
from ..data.prepare import model_input
from ..methods import get_method
from ..metrics.base import metrics_for, metrics_of
from ..metrics.checks import degenerate
from ..metrics.similarity import DEFAULT_SIMILARITIES, similarities
from ..models import LoadedModel, load_model
from ..models.randomize import randomization_blocks, randomized_copy
from ..options import opt
from ..var import VAR
from .config import RunConfig, open_run
from .registry import Benchmark, register_benchmark
from .report import sanity_plot
from .runner import Shard, current_shard, run_items
from .store import ResultStore

__all__ = ["SanityConfig", "depths_of", "run_sanity"]


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
    similarities: list[str] = field(default_factory=lambda: list(DEFAULT_SIMILARITIES), metadata=opt(
        "similarity measures, comma-separated", lambda: metrics_of("similarity")))
    blocks: str | list[str] = field(default="weights", metadata=opt(
        "blocks randomised top-down: 'weights' (those with a conv/linear/attention weight: logits first, then each "
        "block towards the input, as Adebayo et al.), 'all' (also normalisation-only modules such as ResNet's bn1) "
        "or comma-separated dotted module names; the run's stored config lists the names used"))

    benchmark = "sanity"


def depths_of(n_blocks: int, count: int | None) -> list[int]:
    """Evenly spaced cumulative depths from 0 (original) to ``n_blocks`` (all randomised)."""
    if not count or count >= n_blocks + 1:
        return list(range(n_blocks + 1))
    return sorted({round(i * n_blocks / (count - 1)) for i in range(count)}) if count > 1 else [0]


def run_sanity(config: SanityConfig, out_dir: str | Path, shard: Shard | None = None,
               lm: LoadedModel | None = None) -> ResultStore:
    """Run (or resume) the cascading-randomisation benchmark into ``out_dir``.

    Returns:
        The open store.
    """
    images = open_dataset(config.dataset, needs="images").images()
    metrics_for("similarity", config.similarities)  # unknown measures fail before the run starts
    shard = shard or current_shard()
    lm = lm or load_model(config.model, config.weights, trust_checkpoint=config.trust_checkpoint)
    blocks = randomization_blocks(lm.model, config.blocks)  # stored with the run: which layers were randomised
    built = {m: get_method(m, lm, **config.method_kwargs(m)) for m in config.methods}  # checked before storing
    store, cfg = open_run(dataclasses.replace(config, blocks=blocks), out_dir, shard, built)
    model = lm.model.to(cfg.device)
    depths = depths_of(len(blocks), cfg.depths)
    items = {it.id: it for it in cfg.take(images)}
    (first, first_cfg), *others = cfg.variant_configs().items()

    def target_maps(net: object, x: object) -> dict[tuple[str, str], np.ndarray]:
        out = {}
        for name in cfg.methods:
            method = get_method(name, dataclasses.replace(lm, model=net), **cfg.method_kwargs(name))
            result = VAR(method, classes=f"top{cfg.top_k}+worst", preset=first_cfg).attribute(x)  # type: ignore[arg-type]
            out[(name, "vanilla")] = result.raw_target[0].double().cpu().numpy()
            out[(name, first)] = result.refined_target[0].double().cpu().numpy()
            for v, vc in others:
                out[(name, v)] = result.refine(vc).refined_target[0].double().cpu().numpy()
        return out

    def compute(item: str) -> list[tuple]:
        x = model_input(items[item].load(), lm.preprocess)[1].to(cfg.device)
        original = target_maps(model, x)
        rows = []
        for d in depths:
            maps = original if d == 0 else target_maps(randomized_copy(model, d, cfg.seed, blocks), x)
            for (name, variant), m in maps.items():
                unit = f"depth{d:03d}"
                rows.append((unit, name, variant, "fraction", d / len(blocks)))
                why = degenerate(original[(name, variant)])
                why = f"original {why}" if why else degenerate(m)
                rows.append((unit, name, variant, "zeroed", float(why is not None)))
                if why:
                    store.skip_item(f"{item}/{unit}/{name}/{variant}", why)
                    continue
                rows += [(unit, name, variant, k, v)
                         for k, v in similarities(original[(name, variant)], m, cfg.similarities).items()]
        return rows

    run_items(store, list(items), compute, shard, desc="sanity")
    return store


def _last_depth(store: ResultStore) -> str | None:
    """The report's table shows the similarity once every block is randomised."""
    depths = sorted({r[1] for r in store.rows()})
    return depths[-1] if depths else None


register_benchmark(Benchmark(
    name="sanity", config=SanityConfig, run=run_sanity, needs="images",
    summary="cascading model randomisation (Adebayo et al.): similarity to the original map per depth",
    examples=("attrdist bench sanity --dataset sample --out runs/sanity",
              "attrdist bench sanity --dataset imagenet:/data/imagenet/val --max-items 200 --out runs/sanity"),
    report_unit=_last_depth, plots=sanity_plot,
))
