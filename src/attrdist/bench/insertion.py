"""Insertion benchmark: PIC (SIC, AIC) or RISE insertion/deletion of vanilla and VAR maps.

Per image: :class:`~attrdist.var.VAR` computes the raw maps of the class set (top-k most probable + least
probable) once per method; the target (top-1) map, vanilla and refined by each VAR variant
(:meth:`~attrdist.var.VARResult.refine`), gives the curves. The image's random mask is fixed per image
(seeded by the image id) and shared by all methods and variants; an image the PIC rules skip is recorded
with its reason, and so is a map that orders no pixel (all zero after VAR, or constant).
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..data.kinds import open_dataset
from ..data.prepare import model_input
from ..methods import get_method
from ..metrics.checks import degenerate
from ..metrics.insertion import PIC_THRESHOLDS, PicBase, PicSkip, pic_curves, random_mask, rise_curves
from ..models import LoadedModel, load_model
from ..options import opt
from ..var import VAR
from .config import RunConfig, open_run
from .registry import Benchmark, register_benchmark
from .report import curve_plots
from .runner import ItemResult, Shard, current_shard, run_items
from .store import ResultStore

__all__ = ["InsertionConfig", "run_insertion"]


@dataclass(kw_only=True)
class InsertionConfig(RunConfig):
    """Configuration of an insertion run.

    The fields of :class:`~attrdist.bench.config.RunConfig`, and:

    Attributes:
        curve: ``pic`` (SIC and AIC, Kapishnikov et al.) or ``rise`` (insertion and deletion).
        top_k: The class set is the ``top_k`` most probable classes plus the least probable one.
        saliency: Pixel order from ``abs`` (the reference notebook's choice) or ``signed`` maps.
        min_pred: PIC: skip an image whose top-1 softmax is below this (SIC).
        mask_fraction: PIC: fraction of random pixels always kept.
        rise_step: RISE: pixels per step.
    """

    curve: str = field(default="pic", metadata=opt("PIC (SIC and AIC) or RISE insertion/deletion", ("pic", "rise")))
    top_k: int = field(default=3, metadata=opt("class set: the top_k most probable classes and the least probable"))
    saliency: str = field(default="abs", metadata=opt("pixel order from |map| (the PIC notebook's) or the signed map",
                                                      ("abs", "signed")))
    min_pred: float = field(default=0.8, metadata=opt("PIC: skip images whose top-1 softmax is below this (SIC)"))
    mask_fraction: float = field(default=0.01, metadata=opt("PIC: fraction of random pixels always kept"))
    rise_step: int = field(default=224, metadata=opt("RISE: pixels inserted or deleted per step"))

    benchmark = "insertion"


def run_insertion(config: InsertionConfig, out_dir: str | Path, shard: Shard | None = None,
                  lm: LoadedModel | None = None) -> ResultStore:
    """Run (or resume) an insertion benchmark into ``out_dir``.

    Returns:
        The open store.

    Raises:
        ValueError: On an unknown curve or saliency order.
    """
    if config.curve not in ("pic", "rise") or config.saliency not in ("abs", "signed"):
        raise ValueError("curve must be 'pic' or 'rise' and saliency 'abs' or 'signed'")
    images = open_dataset(config.dataset, needs="images").images()
    shard = shard or current_shard()
    lm = lm or load_model(config.model, config.weights, trust_checkpoint=config.trust_checkpoint)
    methods = {m: get_method(m, lm, **config.method_kwargs(m)) for m in config.methods}  # checked before storing
    store, cfg = open_run(config, out_dir, shard, methods)
    model = lm.model.to(cfg.device)
    items = {it.id: it for it in cfg.take(images)}
    (first, first_cfg), *others = cfg.variant_configs().items()
    pre = lm.preprocess

    def predict(batch: np.ndarray) -> np.ndarray:
        x = pre.normalize(torch.from_numpy(batch).permute(0, 3, 1, 2).float().div(255.0)).to(cfg.device)
        with torch.inference_mode():
            return model(x).softmax(1).double().cpu().numpy()

    def compute(item: str) -> ItemResult:
        shown, x = model_input(items[item].load(), pre)
        x = x.to(cfg.device)
        image = np.asarray(shown, dtype=np.uint8)
        seed = zlib.crc32(item.encode()) ^ cfg.seed
        base = PicBase.of(image, random_mask(*image.shape[:2], cfg.mask_fraction, seed), predict) \
            if cfg.curve == "pic" else None
        rows, curves = [], []
        for name, method in methods.items():
            result = VAR(method, classes=f"top{cfg.top_k}+worst", preset=first_cfg).attribute(x)
            target = {"vanilla": result.raw_target[0], first: result.refined_target[0],
                      **{v: result.refine(vc).refined_target[0] for v, vc in others}}
            for variant, m in target.items():
                sal = (m.abs() if cfg.saliency == "abs" else m).double().cpu()
                why = degenerate(sal)  # an all-zero map would keep every pixel at every threshold
                rows.append(("image", name, variant, "zeroed", float(why is not None)))
                if why:
                    store.skip_item(f"{item}/{name}/{variant}", why)
                    continue
                if cfg.curve == "rise":
                    for kind, auc in rise_curves(model, x, sal.to(x.device), int(result.target[0]),
                                                 cfg.rise_step).items():
                        rows.append(("image", name, variant, f"{kind}_auc", auc))
                    continue
                for kind, res in pic_curves(base, sal.numpy(), predict, PIC_THRESHOLDS, cfg.min_pred).items():
                    if isinstance(res, PicSkip):
                        store.skip_item(f"{item}/{kind}", res.reason)
                        continue
                    rows.append(("image", name, variant, f"{kind}_auc", res.auc))
                    curves.append(("image", name, variant, kind, res.y.tolist()))
        return ItemResult(rows, curves)

    run_items(store, list(items), compute, shard, desc="insertion")
    return store


register_benchmark(Benchmark(
    name="insertion", config=InsertionConfig, run=run_insertion, needs="images",
    summary="insertion curves: PIC (SIC, AIC) or RISE insertion/deletion",
    examples=("attrdist bench insertion --dataset sample --out runs/pic",
              "attrdist bench insertion --dataset imagenet:/data/imagenet/val --max-items 1000 --out runs/pic",
              "attrdist bench insertion --curve rise --out runs/rise"),
    plots=curve_plots,
))
