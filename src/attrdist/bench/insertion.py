"""Insertion benchmark: PIC (SIC, AIC) or RISE insertion/deletion of vanilla and VAR maps.

Per image: the class set (top-k most probable + least probable), the raw maps of each method once, the
target (top-1) map vanilla and refined by each VAR variant, then the curves. The image's random mask is
fixed per image (seeded by the image id) and shared by all methods and variants; an image the PIC rules
skip is recorded with its reason.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..methods import get_method
from ..metrics.checks import degenerate
from ..metrics.insertion import PIC_THRESHOLDS, PicBase, PicSkip, pic_curves, random_mask, rise_curves
from ..models import LoadedModel, load_model
from ..var import get_preset, var
from .config import RunConfig, open_run
from .items import image_items
from .runner import ItemResult, Shard, current_shard, run_items
from .store import ResultStore

__all__ = ["InsertionConfig", "run_insertion"]


@dataclass
class InsertionConfig(RunConfig):
    """Configuration of an insertion run.

    Attributes:
        dataset: ``sample`` (views of the scikit-image photos), ``imagenet:PATH`` or ``folder:PATH``.
        curve: ``pic`` (SIC and AIC, Kapishnikov et al.) or ``rise`` (insertion and deletion).
        top_k: The class set is the ``top_k`` most probable classes plus the least probable one.
        saliency: Pixel order from ``abs`` (the reference notebook's choice) or ``signed`` maps.
        min_pred: PIC: skip an image whose top-1 softmax is below this (SIC).
        mask_fraction: PIC: fraction of random pixels always kept.
        rise_step: RISE: pixels per step.

    A saliency map that orders no pixel (all zero, as when VAR keeps no pixel, or constant) gets no curve:
    it is recorded as ``zeroed`` with its reason and left out of the aggregates.
    """

    curve: str = "pic"
    top_k: int = 3
    saliency: str = "abs"
    min_pred: float = 0.8
    mask_fraction: float = 0.01
    rise_step: int = 224

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
    shard = shard or current_shard()
    store, cfg = open_run(config, out_dir, shard)
    lm = lm or load_model(cfg.model, cfg.weights)
    model = lm.model.to(cfg.device)
    items = image_items(cfg.dataset, cfg.limit)
    methods = {m: get_method(m, model) for m in cfg.methods}
    variants = {n: get_preset(s.get("preset"), **{k: v for k, v in s.items() if k != "preset"})
                for n, s in cfg.variants.items()}
    pre = lm.preprocess

    def predict(batch: np.ndarray) -> np.ndarray:
        x = pre.normalize(torch.from_numpy(batch).permute(0, 3, 1, 2).float().div(255.0)).to(cfg.device)
        with torch.no_grad():
            return model(x).softmax(1).double().cpu().numpy()

    def compute(item: str) -> ItemResult:
        shown = pre.crop_image(items[item]())
        image = np.asarray(shown, dtype=np.uint8)
        x = pre.normalize(pre.to_unit(shown))[None].to(cfg.device)
        seed = zlib.crc32(item.encode()) ^ cfg.seed
        base = PicBase.of(image, random_mask(*image.shape[:2], cfg.mask_fraction, seed), predict) \
            if cfg.curve == "pic" else None
        rows, curves = [], []
        for name, method in methods.items():
            att = method.explain(x, f"top{cfg.top_k}+worst")
            target = {"vanilla": att.maps[0, 0]}
            for v, vc in variants.items():
                target[v] = var(att.maps, preset=vc, warn_identical=False).refined[0, 0]
            for variant, m in target.items():
                sal = (m.abs() if cfg.saliency == "abs" else m).double().cpu()
                why = degenerate(sal)  # an all-zero map would keep every pixel at every threshold
                rows.append(("image", name, variant, "zeroed", float(why is not None)))
                if why:
                    store.skip_item(f"{item}/{name}/{variant}", why)
                    continue
                if cfg.curve == "rise":
                    for kind, auc in rise_curves(model, x, sal.to(x.device), int(att.classes[0, 0]),
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
