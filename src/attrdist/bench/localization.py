"""Localisation benchmarks: the grid pointing game (Quad), Part-Quad and COCO objects.

Per item and method, :class:`~attrdist.var.VAR` computes the raw maps of the class set once; vanilla and
every VAR variant (:meth:`~attrdist.var.VARResult.refine`) are scored from those maps. Per-item results go
to the run's SQLite store with the full configuration.

The paper's protocol (appendix B) is the default: the positive part of each class's map, an 11x11 Gaussian
blur (sigma 2 and reflect-101 borders, OpenCV's ``GaussianBlur((11, 11), 0)`` as in the authors' demo), then
region attribution, IoU and F1 of the cell or object region.

* Grids (``sample``, ``imagenet:PATH``, ``folder:PATH``, ``parts:PATH``): the class set is the grid's classes
  (each distinct class once), the region of a cell is the whole cell (Part-Quad: the object's mask in it).
  ``--selection authors`` (default, the paper's Quad-ImageNet: every image squashed to the cell, images taken
  in a seeded shuffled order, classes may repeat), ``rao`` (Rao et al.: confident, correct, distinct classes;
  a cell is the model's resize-and-centre-crop view of the image, and the confidence filter classifies that
  very cell image) or ``random``. ``--cell 112`` gives 224-px grids, ``--cell 224`` 448-px grids; a model with
  a fixed input size (a ViT) sees the grid resized to it, and its maps are upsampled back to the grid.
* COCO (``attrdist bench coco``, ``coco:PATH``): every image resized (squashed) to the model's input size, as
  the authors' ``get_coco_dataset`` does (``Resize((224, 224))``), masks with it (nearest); objects under 1%
  of the image and objects whose category's ImageNet classes have a summed probability under 1e-4 on that input are left
  out; the class set is the categories present.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property, lru_cache
from typing import TYPE_CHECKING, cast

import numpy as np
from PIL import Image

from ..data.grids import SELECTIONS
from ..metrics.base import BINARIZATION_RULES, PAPER_BORDER, PAPER_KERNEL, PAPER_SIGMA, metrics_of
from ..options import opt
from .base import Benchmark, Rows
from .config import RunConfig
from .records import ItemResult, MapCheck, Score, Skip
from .registry import register_benchmark

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    import torch

    from ..data.grids import Candidate, Grid
    from ..data.kinds import ObjectsItem
    from .report import Table
    from .store import ResultStore

__all__ = ["CocoConfig", "CocoLocalization", "Localization", "LocalizationConfig", "RegionConfig",
           "run_localization"]

@dataclass(kw_only=True)
class RegionConfig(RunConfig):
    """What every localisation run shares: how a map is scored against a region.

    The fields of :class:`~attrdist.bench.config.RunConfig`, and:

    Attributes:
        smoothing: ``gaussian``, ``box`` or ``none``, applied to the positive part of the map.
        kernel: Smoothing kernel size (11).
        sigma: Gaussian sigma (2.0: OpenCV's for an 11x11 kernel, as in the VAR authors' demo; the RISE
            code's 11x11 kernel has 5).
        border: Smoothing border: ``reflect`` (reflect-101, OpenCV's default) or ``zeros``.
        binarize: Binarisation rule for IoU/F1 (see :data:`attrdist.metrics.BINARIZATIONS`).
        binarize_value: The rule's factor.
        metrics: Localisation metrics to compute (default: every registered default one).
    """

    smoothing: str = field(default="gaussian", metadata=opt("smoothing of the positive part",
                                                            ("gaussian", "box", "none")))
    kernel: int = field(default=PAPER_KERNEL, metadata=opt("smoothing kernel size"))
    sigma: float = field(default=PAPER_SIGMA, metadata=opt("Gaussian sigma (2: the authors' OpenCV blur)"))
    border: str = field(default=PAPER_BORDER, metadata=opt("smoothing border (reflect-101 or zero padding)",
                                                           ("reflect", "zeros")))
    binarize: str = field(default="mean", metadata=opt("binarisation for IoU and F1", BINARIZATION_RULES))
    binarize_value: float = field(default=1.0, metadata=opt("the binarisation's factor"))
    metrics: list[str] | None = field(default=None, metadata=opt("localisation metrics (default: all)",
                                                                  lambda: metrics_of("localization")))


@dataclass(kw_only=True)
class LocalizationConfig(RegionConfig):
    """Configuration of a grid localisation run (saved in the store and as ``config.yaml``).

    The fields of :class:`RegionConfig`, and:

    Attributes:
        grid: Grid side n (n x n cells).
        cell: Cell size in pixels (112: 224-px grids, the paper's; 224: 448-px grids at full resolution).
        selection: ``authors`` (the paper's Quad-ImageNet), ``rao`` or ``random`` (see the module docstring).
        confidence: Confidence threshold of the ``rao`` selection.

    ``max_items`` limits the grids (12 for ``sample`` when unset).
    """

    grid: int = field(default=2, metadata=opt("grid side n (n x n cells)"))
    cell: int = field(default=112, metadata=opt("cell size in pixels: 112 (224-px grids, the paper's) or 224"))
    selection: str = field(default="authors", metadata=opt(
        "grids: the paper's Quad-ImageNet (authors), Rao et al.'s confident distinct classes (rao), or random "
        "distinct classes", SELECTIONS))
    confidence: float = field(default=0.99, metadata=opt("confidence threshold of --selection rao"))


@dataclass(kw_only=True)
class CocoConfig(RegionConfig):
    """Configuration of a COCO localisation run.

    The fields of :class:`RegionConfig`, and:

    Attributes:
        min_area: Minimal object area fraction (the paper: 1%).
        area_from: Object area from its ``mask`` (the paper) or its ``bbox`` (the authors' code, with
            ``min_area`` 0.025).
        min_prob: Minimal summed ImageNet probability of an object's class set.

    ``max_items`` limits the images.
    """

    min_area: float = field(default=0.01, metadata=opt("minimal object area, a fraction of the image"))
    area_from: str = field(default="mask", metadata=opt("object area from its mask (paper) or its box "
                                                        "(authors' code)", ("mask", "bbox")))
    min_prob: float = field(default=1e-4, metadata=opt("minimal probability of an object's classes"))


@dataclass
class _Unit:
    name: str
    column: int  # column of the class set
    mask: np.ndarray


@dataclass
class _Prepared:
    x: torch.Tensor  # [1, 3, H, W] normalised, at the model's input size
    classes: list[int]  # the class set (empty for COCO until the model has seen the image)
    units: list[_Unit]
    objects: list[tuple] = field(default_factory=list)  # COCO: (unit name, ImageNet class set, mask)


class _Regions(Benchmark):
    """Scoring each unit's map against its region, for every method and variant, a batch at a time."""

    cfg: RegionConfig

    def _input(self, image: Image.Image) -> torch.Tensor:
        """The normalised model input of an image: at its own size, or resized to the model's fixed input size."""
        from ..data.prepare import fit, model_input

        size = self.lm.input_size
        return model_input(fit(image, size[::-1]) if size is not None else image, self.lm.preprocess, crop=False)[1]

    @cached_property
    def _metrics(self) -> list[str]:
        """The localisation metrics scored (looked up once per run, not per batch)."""
        from ..metrics import metrics_for

        return list(metrics_for("localization", self.cfg.metrics))

    def batch_key(self, prepared: object) -> object:
        return (tuple(prepared.x.shape), len(prepared.classes)) if isinstance(prepared, _Prepared) else None

    def with_classes(self, prepared: _Prepared) -> _Prepared | Skip:
        """The item with its class set (known when prepared, unless the model must see the image first)."""
        return prepared

    def compute(self, batch: list[tuple[str, object]]) -> list[Rows]:
        """The rows of several items whose inputs and class sets have one shape, from one attribution per method.

        Returns:
            Per item, its rows or the reason it is skipped.
        """
        import torch

        c = self.cfg
        preps = [p if isinstance(p, Skip) else self.with_classes(cast(_Prepared, p)) for _, p in batch]
        live = [i for i, p in enumerate(preps) if isinstance(p, _Prepared)]
        out: list[Rows] = [p if isinstance(p, Skip) else ItemResult() for p in preps]
        if not live:
            return out
        ready = [p for p in preps if isinstance(p, _Prepared)]
        if len({(tuple(p.x.shape), len(p.classes)) for p in ready}) > 1:
            for i in live:  # inputs of different shapes: one at a time
                out[i] = self.compute([batch[i]])[0]
            return out
        x = torch.cat([p.x for p in ready])
        x = x.pin_memory().to(c.device, non_blocking=True) if c.device.startswith("cuda") else x
        classes = torch.tensor([p.classes for p in ready], device=x.device)
        units = [(batch[i][0], u) for i, p in zip(live, ready, strict=True) for u in p.units]
        results = {batch[i][0]: out[i] for i in live}
        masks = torch.from_numpy(np.stack([u.mask for _, u in units])).to(x.device)
        rows_of = torch.tensor([row for row, p in enumerate(ready) for _ in p.units], device=x.device)
        cols_of = torch.tensor([u.column for _, u in units], device=x.device)
        for name, result in self.attribute(x, classes):
            # every variant's maps of the units scored in one call: [variants x units, H, W]
            variants = result.variants(self.variants)
            stacked = torch.cat([maps.detach().float()[rows_of, cols_of] for maps in variants.values()])
            scores, why = self._scores(stacked, masks.repeat(len(variants), *([1] * (masks.dim() - 1))))
            for v, variant in enumerate(variants):
                for n, (item, u) in enumerate(units):
                    at = v * len(units) + n
                    rec = results[item]
                    assert isinstance(rec, ItemResult)
                    rec.maps.append(MapCheck(item, u.name, name, variant, why.get(at)))
                    if at not in why:
                        rec.scores += [Score(item, u.name, name, variant, metric, values[at])
                                       for metric, values in scores.items()]
        return out

    def _scores(self, maps: torch.Tensor, masks: torch.Tensor) -> tuple[dict[str, list[float]], dict[int, str]]:
        """Every metric of maps ``[N, H, W]`` against their regions, computed where the maps are (one transfer).

        Returns:
            The values of each metric, and why each map that cannot be scored cannot (by its index).
        """
        import torch
        import torch.nn.functional as F

        from ..metrics import localization_scores
        from ..metrics.checks import degenerate, unscorable
        from ..metrics.localization import EMPTY_MAP

        c = self.cfg
        if maps.shape[-2:] != masks.shape[-2:]:
            maps = F.interpolate(maps[:, None], size=masks.shape[-2:], mode="bilinear", align_corners=False)[:, 0]
        dead = unscorable(maps)  # the one definition of a map that cannot be scored: its metrics are not recorded
        why = {int(i): degenerate(maps[i]) or "unscorable map" for i in dead.nonzero().flatten().tolist()}
        scores = localization_scores(maps, masks, c.kernel, c.sigma, c.smoothing, c.binarize, c.binarize_value,
                                     c.border, self._metrics)
        scores["no_positive"] = maps.clamp(min=0).flatten(1).sum(1) <= EMPTY_MAP
        values = torch.stack([v.double() for v in scores.values()]).cpu().tolist()
        return dict(zip(scores, values, strict=True)), why

    @staticmethod
    def plots(store: ResultStore, table: Table, run_dir: Path) -> dict[str, Path]:
        from .report import bar_plots

        return bar_plots(store, table, run_dir)


@register_benchmark
class Localization(_Regions):
    """The grid pointing game (Quad-ImageNet), Part-Quad and grids of any labelled images.

    Args:
        cfg, lm, store, methods, dataset: As :class:`~attrdist.bench.base.Benchmark`.
    """

    name = "localization"
    config = LocalizationConfig
    needs = ("grids", "labels")
    summary = "grid pointing game (Quad) and Part-Quad: region attribution, IoU, F1 of each cell"
    examples = (
        "attrdist bench localization --dataset sample --out runs/sample",
        "attrdist bench localization --config configs/paper/quad-resnet50.yaml --dataset imagenet:/data/imagenet/val "
        "--out runs/quad",
        "attrdist bench localization --dataset imagenet:/data/imagenet/val --selection rao --cell 224 --out runs/rao",
    )
    cfg: LocalizationConfig

    # items ------------------------------------------------------------------------------------------

    @cached_property
    def _cell(self) -> Callable[[str], Image.Image]:
        """:meth:`_cell_image`, cached for small datasets."""
        return lru_cache(maxsize=64)(self._cell_image)

    @cached_property
    def _own_grids(self) -> bool:
        return self.grids_of_dataset is not None

    @cached_property
    def grids_of_dataset(self) -> list[Grid] | None:
        """The dataset's own grids (the sample photos), classified by the model, or ``None``."""
        from ..data.grids import grid_classes

        c = self.cfg
        return self.dataset.grids(c.grid, c.limit, c.seed, lambda ims: grid_classes(self.lm, ims, c.device))

    @cached_property
    def grids(self) -> dict[str, Grid]:
        """The grids of a grid dataset, by id."""
        from ..data.grids import Candidate, select_grids

        c = self.cfg
        if self.grids_of_dataset is not None:
            return {g.id: g for g in self.grids_of_dataset}
        unlabelled = [it.id for it in self._images.values() if it.label is None]
        if unlabelled:
            raise ValueError(f"dataset {c.dataset!r} has images without labels ({unlabelled[0]}, ...): grids "
                             "need labelled images")
        cands = [Candidate(it.id, it.label) for it in self._images.values() if it.label is not None]
        if c.selection == "rao":
            cands = self._with_predictions(cands)
        return {g.id: g for g in select_grids(cands, c.grid, c.selection, c.confidence, c.seed, c.limit)}

    def items(self) -> list[str]:
        """The grids, in a deterministic order."""
        return sorted(self.grids)

    def dataset_size(self) -> int:
        """Images the grids are drawn from (the dataset's own grids: their cells)."""
        own = self.grids_of_dataset
        return len(self._images) if own is None else len({it for g in own for it in g.items})

    def _view(self, image: Image.Image, resample: Image.Resampling | None = None) -> Image.Image:
        """The part of an image that goes into a cell: all of it, or the model's centre crop for ``rao``."""
        rao = self.cfg.selection == "rao" and not self._own_grids
        return self.lm.preprocess.crop_image(image, resample) if rao else image

    def _cell_image(self, item: str) -> Image.Image:
        """The cell image of a grid item, at the cell size (cached for small datasets)."""
        from ..data.prepare import fit

        return fit(self._view(self.dataset.grid_image(item)), self.cfg.cell)

    def _with_predictions(self, cands: list[Candidate]) -> list[Candidate]:
        """Candidates with the model's confidence on the exact cell image a grid will hold (``rao``)."""
        import torch
        from tqdm import tqdm

        from ..data.grids import Candidate

        c = self.cfg
        key = f"predictions:{c.model}:{c.weights}:cell{c.cell}"
        cached = (self.store.cache_get(key) if self.store else None) or {}
        assert isinstance(cached, dict)
        todo = [cand for cand in cands if cand.id not in cached]
        model = self.lm.model.to(c.device)
        for i, cand in enumerate(tqdm(todo, desc="classifying cells", unit="img", disable=not todo)):
            with torch.inference_mode():
                p = model(self._input(self._cell(cand.id)).to(c.device)).softmax(1)[0]
            cached[cand.id] = (int(p.argmax()), float(p.max()))
            if self.store and (i % 256 == 255 or i == len(todo) - 1):
                self.store.cache_put(key, cached)
        return [Candidate(cand.id, cand.label, confidence=cached[cand.id][1] if cached[cand.id][0] == cand.label
                          else 0.0, correct=cached[cand.id][0] == cand.label) for cand in cands]

    # one item ----------------------------------------------------------------------------------------

    def prepare(self, item: str) -> _Prepared | Skip:
        """Image, class set and regions of one grid."""
        from ..data.grids import cell_masks
        from ..data.prepare import compose_grid, fit

        grid, c = self.grids[item], self.cfg
        cells: list[Image.Image] = []
        objects: list[np.ndarray | None] = []
        for it in grid.items:
            cells.append(self._cell(it))
            mask = None if self._own_grids else self._images[it].mask
            if mask is None:
                objects.append(None)
                continue
            m = Image.fromarray(mask().astype(np.uint8) * 255)
            objects.append(np.asarray(fit(self._view(m, Image.Resampling.NEAREST), c.cell)) > 127)
        image = compose_grid(cells, c.grid, c.cell)
        masks = cell_masks(c.grid, c.cell, objects)
        classes = list(dict.fromkeys(grid.classes))  # each distinct class once, in cell order
        if len(classes) < 2:
            return Skip(f"the grid holds {len(classes)} distinct class; VAR needs 2")
        units = [_Unit(f"cell{k}", classes.index(cls), masks[k]) for k, cls in enumerate(grid.classes)]
        return _Prepared(self._input(image), classes, units)


@register_benchmark
class CocoLocalization(_Regions):
    """COCO objects: each object's region against its category's map, the class set the categories present."""

    name = "coco"
    config = CocoConfig
    needs = ("objects",)
    summary = "COCO localisation: region attribution, IoU, F1 of each object against its category's map"
    examples = ("attrdist bench coco --dataset coco:/data/coco --out runs/coco",
                "attrdist bench coco --config configs/paper/coco-resnet50.yaml --dataset coco:/data/coco "
                "--out runs/coco-resnet50")
    cfg: CocoConfig

    @cached_property
    def _objects(self) -> dict[str, ObjectsItem]:
        return {o.id: o for o in self.dataset.objects(self.cfg.min_area, self.cfg.area_from)}

    def items(self) -> list[str]:
        """The images with objects, by id (numeric ids in numeric order)."""
        return self.cfg.take(sorted(self._objects, key=lambda i: (len(i), i)))

    def dataset_size(self) -> int:
        """Images with at least one object."""
        return len(self._objects)

    def prepare(self, item: str) -> _Prepared:
        """A COCO image at the model's input size and its objects' masks (the class set needs the model)."""
        from ..data.prepare import fit

        rec = self._objects[item]
        crop = self.lm.preprocess.crop
        h, w = self.lm.input_size or (crop, crop)
        x = self._input(fit(rec.load(), (w, h)))
        objects = [(f"obj{o.object_id}:{o.category}", o.imagenet,
                    np.asarray(fit(Image.fromarray(o.mask().astype(np.uint8) * 255), (w, h))) > 127)
                   for o in rec.objects]
        return _Prepared(x, [], [], objects)

    def with_classes(self, prepared: _Prepared) -> _Prepared | Skip:
        """The class set of a COCO image.

        Each category whose ImageNet classes have a probability of at least ``min_prob`` on the model's input,
        as its most probable class.
        """
        import torch

        with torch.inference_mode():
            p = self.lm.model(prepared.x.to(self.cfg.device)).softmax(1)[0].cpu()
        classes: list[int] = []
        units = []
        for name, members, mask in prepared.objects:
            members = torch.tensor(members)
            if float(p[members].sum()) < self.cfg.min_prob:
                continue
            rep = int(members[p[members].argmax()])
            if rep not in classes:
                classes.append(rep)
            units.append(_Unit(name, classes.index(rep), mask))
        if len(classes) < 2:
            return Skip(f"{len(classes)} category with probability >= {self.cfg.min_prob}; VAR needs 2")
        return _Prepared(prepared.x, classes, units)


#: Run (or resume) a grid localisation benchmark: ``run_localization(config, out_dir, shard=None, lm=None)``.
run_localization = Localization.run
