"""Cascading-randomisation sanity check (Adebayo et al., 2018) of vanilla and VAR maps.

Per image and depth: a copy of the model with its top ``depth`` blocks re-initialised (the user's model is
never modified), the class set (top-k + least probable) and explained class (top-1) of that randomised
model, the raw maps of each method once, and the similarity of its target map to the original model's
target map, vanilla and for each VAR variant from the same raw maps.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..methods import get_method
from ..metrics.checks import degenerate
from ..metrics.similarity import DEFAULT_SIMILARITIES, similarities
from ..models import LoadedModel, load_model
from ..models.randomize import randomization_blocks, randomized_copy
from ..var import get_preset, var
from .config import RunConfig, open_run
from .items import image_items
from .runner import Shard, current_shard, run_items
from .store import ResultStore

__all__ = ["SanityConfig", "depths_of", "run_sanity"]


@dataclass
class SanityConfig(RunConfig):
    """Configuration of a sanity-check run.

    Attributes:
        dataset: ``sample`` (views of the scikit-image photos), ``imagenet:PATH`` or ``folder:PATH``.
        top_k: The class set is the ``top_k`` most probable classes plus the least probable one (of the
            randomised model).
        depths: Number of randomisation depths, evenly spaced from 0 to all blocks (``None``: every depth).
        similarities: Measures of :data:`attrdist.metrics.similarity.SIMILARITIES` (default: the paper's
            Spearman with and without abs, SSIM and HOG-Pearson, plus Pearson and cosine).

    A map that cannot be compared (all zero, as when VAR keeps no pixel, or constant) gets no similarity:
    it is recorded as ``zeroed`` with its reason and left out of the means.
    """

    top_k: int = 3
    depths: int | None = 6
    similarities: list[str] = field(default_factory=lambda: list(DEFAULT_SIMILARITIES))

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
    shard = shard or current_shard()
    store, cfg = open_run(config, out_dir, shard)
    lm = lm or load_model(cfg.model, cfg.weights)
    model = lm.model.to(cfg.device)
    blocks = randomization_blocks(model)
    depths = depths_of(len(blocks), cfg.depths)
    items = image_items(cfg.dataset, cfg.limit)
    variants = {n: get_preset(s.get("preset"), **{k: v for k, v in s.items() if k != "preset"})
                for n, s in cfg.variants.items()}
    pre = lm.preprocess

    def target_maps(net: object, x: object) -> dict[tuple[str, str], np.ndarray]:
        out = {}
        for name in cfg.methods:
            att = get_method(name, net).explain(x, f"top{cfg.top_k}+worst")
            out[(name, "vanilla")] = att.maps[0, 0].double().cpu().numpy()
            for v, vc in variants.items():
                out[(name, v)] = var(att.maps, preset=vc, warn_identical=False).refined[0, 0].double().cpu().numpy()
        return out

    def compute(item: str) -> list[tuple]:
        x = pre.normalize(pre.to_unit(pre.crop_image(items[item]())))[None].to(cfg.device)
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
