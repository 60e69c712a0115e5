"""Insertion benchmark: PIC (SIC, AIC) or RISE insertion/deletion of vanilla and VAR maps.

Per image: one :class:`~attrdist.var.VAR` call per method gives the raw maps of the class set (top-k most
probable + least probable); the target (top-1) map, vanilla and refined by each VAR variant, gives the curves. The
image's random mask is fixed per image (seeded by the image id) and shared by all methods and variants, and so is
everything else PIC can share (:class:`~attrdist.metrics.insertion.PicBase`: the information estimates, the
model's predictions, every reconstruction two maps have in common); the thresholds' images of all the maps go
through the model in batches. An image the PIC rules skip is recorded with its reason, and so is a map that
orders no pixel (all zero after VAR, or constant).
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..options import opt
from .base import Benchmark, ImageInput
from .config import ImageRunConfig
from .records import Curve, CurveSkip, ItemResult, Score
from .registry import register_benchmark

if TYPE_CHECKING:
    from .report import Table
    from .store import ResultStore

__all__ = ["Insertion", "InsertionConfig", "run_insertion"]


@dataclass(kw_only=True)
class InsertionConfig(ImageRunConfig):
    """Configuration of an insertion run.

    The fields of :class:`~attrdist.bench.config.ImageRunConfig` (the class set: ``top_k`` most probable classes
    and the least probable), and:

    Attributes:
        curve: ``pic`` (SIC and AIC, Kapishnikov et al.) or ``rise`` (insertion and deletion).
        saliency: Pixel order from ``abs`` (the reference notebook's choice) or ``signed`` maps.
        min_pred: PIC: skip an image whose top-1 softmax is below this (SIC).
        mask_fraction: PIC: fraction of random pixels always kept.
        rise_step: RISE: pixels per step.
    """

    curve: str = field(default="pic", metadata=opt("PIC (SIC and AIC) or RISE insertion/deletion", ("pic", "rise")))
    saliency: str = field(default="abs", metadata=opt("pixel order from |map| (the PIC notebook's) or the signed map",
                                                      ("abs", "signed")))
    min_pred: float = field(default=0.8, metadata=opt("PIC: skip images whose top-1 softmax is below this (SIC)"))
    mask_fraction: float = field(default=0.01, metadata=opt("PIC: fraction of random pixels always kept"))
    rise_step: int = field(default=224, metadata=opt("RISE: pixels inserted or deleted per step"))

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.curve not in ("pic", "rise") or self.saliency not in ("abs", "signed"):
            raise ValueError("curve must be 'pic' or 'rise' and saliency 'abs' or 'signed'")


@register_benchmark
class Insertion(Benchmark):
    """Insertion curves of each method's target map, vanilla and every VAR variant."""

    name = "insertion"
    config = InsertionConfig
    summary = "insertion curves: PIC (SIC, AIC) or RISE insertion/deletion"
    examples = ("attrdist bench insertion --dataset sample --out runs/pic",
                "attrdist bench insertion --dataset imagenet:/data/imagenet/val --max-items 1000 --out runs/pic",
                "attrdist bench insertion --curve rise --out runs/rise")
    cfg: InsertionConfig

    def predict(self, batch: np.ndarray) -> np.ndarray:
        """Softmax of the model on ``uint8`` images ``[N, H, W, 3]`` (what the PIC curves call)."""
        import torch

        x = self.lm.preprocess.normalize(torch.from_numpy(batch).permute(0, 3, 1, 2).float().div(255.0))
        with torch.inference_mode():
            return self.lm.model(x.to(self.cfg.device)).softmax(1).double().cpu().numpy()

    def score(self, item: str, prepared: object) -> ItemResult:
        """The insertion curves (or RISE areas) of each method's target map, vanilla and every variant.

        PIC: the image's shared part (its random mask's reconstruction, the information estimates, the model on
        both) is computed once, and so is every reconstruction two maps share; the thresholds' images of all
        maps go through the model in batches.
        """
        from ..metrics.insertion import (
            PIC_THRESHOLDS,
            PicBase,
            PicSkip,
            pic_curves_many,
            random_mask,
        )
        from ..metrics.rise import rise_curves

        assert isinstance(prepared, ImageInput)
        c = self.cfg
        x = prepared.x.to(c.device)
        image = np.asarray(prepared.shown, dtype=np.uint8)
        seed = zlib.crc32(item.encode()) ^ c.seed
        out = ItemResult()
        scored = []  # (method, variant, map, target) of the maps that can be scored
        for name, result in self.attribute(x, self.class_set(prepared)):
            for variant, m in result.variants(self.variants, target=True).items():
                sal = (m[0].abs() if c.saliency == "abs" else m[0]).double().cpu()
                check = self.check_map(item, "image", name, variant, sal)
                out.maps.append(check)
                if check.scorable:  # an all-zero map would keep every pixel at every threshold
                    scored.append((name, variant, sal, int(result.target[0])))
        if c.curve == "rise":
            for name, variant, sal, target in scored:
                aucs = rise_curves(self.lm.model, x, sal.to(x.device), target, c.rise_step)
                out.scores += [Score(item, "image", name, variant, f"{kind}_auc", auc) for kind, auc in aucs.items()]
            return out
        if not scored:
            return out
        height, width = image.shape[:2]
        base = PicBase.of(image, random_mask(height, width, c.mask_fraction, seed), self.predict)
        pic = pic_curves_many(base, [sal.numpy() for _, _, sal, _ in scored], self.predict, PIC_THRESHOLDS,
                              c.min_pred)
        for (name, variant, _, _), curves in zip(scored, pic, strict=True):
            for kind, res in curves.items():
                if isinstance(res, PicSkip):
                    out.curve_skips.append(CurveSkip(item, "image", name, variant, kind, res.reason))
                    continue
                out.scores.append(Score(item, "image", name, variant, f"{kind}_auc", res.auc))
                out.curves.append(Curve(item, "image", name, variant, kind, tuple(res.y.tolist())))
        return out

    @staticmethod
    def plots(store: ResultStore, table: Table, run_dir: Path) -> dict[str, Path]:
        """The median insertion curves."""
        from .report import curve_plots

        return curve_plots(store, table, run_dir)


#: Run (or resume) an insertion benchmark into a folder: ``run_insertion(config, out_dir, shard=None, lm=None)``.
run_insertion = Insertion.run
