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
* COCO (``coco:PATH``): every image resized (squashed) to the model's input size, as the authors'
  ``get_coco_dataset`` does (``Resize((224, 224))``), masks with it (nearest); objects under 1% of the image
  and objects whose category's ImageNet classes have a summed probability under 1e-4 on that input are left
  out; the class set is the categories present.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property, lru_cache
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from ..data.grids import SELECTIONS, Candidate, Grid, cell_masks, grid_classes, select_grids
from ..data.kinds import Dataset, ImageItem, open_dataset
from ..data.prepare import compose_grid, fit, model_input
from ..methods import Attributor, get_method
from ..metrics import BINARIZATIONS, localization_scores, metrics_for, metrics_of
from ..metrics.checks import unscorable
from ..metrics.localization import EMPTY_MAP, PAPER_BORDER, PAPER_KERNEL, PAPER_SIGMA
from ..models import LoadedModel, load_model
from ..options import opt
from ..var import NORMALIZATIONS, VAR
from .config import RunConfig, open_run
from .registry import Benchmark, register_benchmark
from .report import bar_plots
from .runner import Shard, Skip, current_shard, run_batches
from .store import ResultStore

__all__ = ["ALL_VARIANTS", "LocalizationBenchmark", "LocalizationConfig", "run_localization"]

#: The variant study (``--variants all``): the named presets and each normalisation with the paper's
#: temperatures.
ALL_VARIANTS: dict[str, dict] = {
    "paper": {"preset": "paper"},
    "authors-code": {"preset": "authors-code"},
    **{f"paper+{n}": {"preset": "paper", "normalize": n} for n in NORMALIZATIONS if n != "none"},
}


@dataclass(kw_only=True)
class LocalizationConfig(RunConfig):
    """Configuration of a localisation run (saved in the store and as ``config.yaml``).

    The fields of :class:`~attrdist.bench.config.RunConfig`, and:

    Attributes:
        grid: Grid side n (n x n cells).
        cell: Cell size in pixels (112: 224-px grids, the paper's; 224: 448-px grids at full resolution).
        selection: ``authors`` (the paper's Quad-ImageNet), ``rao`` or ``random`` (see the module docstring).
        confidence: Confidence threshold of the ``rao`` selection.
        smoothing: ``gaussian``, ``box`` or ``none``, applied to the positive part of the map.
        kernel: Smoothing kernel size (11).
        sigma: Gaussian sigma (2.0: OpenCV's for an 11x11 kernel, as in the VAR authors' demo; the RISE
            code's 11x11 kernel has 5).
        border: Smoothing border: ``reflect`` (reflect-101, OpenCV's default) or ``zeros``.
        binarize: Binarisation rule for IoU/F1 (see :data:`attrdist.metrics.BINARIZATIONS`).
        binarize_value: The rule's factor.
        min_area: COCO: minimal object area fraction (the paper: 1%).
        area_from: COCO: object area from its ``mask`` (the paper) or its ``bbox`` (the authors' code, with
            ``min_area`` 0.025).
        min_prob: COCO: minimal summed ImageNet probability of an object's class set.
        metrics: Localisation metrics to compute (default: every registered default one).

    ``max_items`` limits grids or COCO images (12 grids for ``sample`` when unset).
    """

    grid: int = field(default=2, metadata=opt("grid side n (n x n cells)"))
    cell: int = field(default=112, metadata=opt("cell size in pixels: 112 (224-px grids, the paper's) or 224"))
    selection: str = field(default="authors", metadata=opt(
        "grids: the paper's Quad-ImageNet (authors), Rao et al.'s confident distinct classes (rao), or random "
        "distinct classes", SELECTIONS))
    confidence: float = field(default=0.99, metadata=opt("confidence threshold of --selection rao"))
    smoothing: str = field(default="gaussian", metadata=opt("smoothing of the positive part",
                                                            ("gaussian", "box", "none")))
    kernel: int = field(default=PAPER_KERNEL, metadata=opt("smoothing kernel size"))
    sigma: float = field(default=PAPER_SIGMA, metadata=opt("Gaussian sigma (2: the authors' OpenCV blur)"))
    border: str = field(default=PAPER_BORDER, metadata=opt("smoothing border (reflect-101 or zero padding)",
                                                           ("reflect", "zeros")))
    binarize: str = field(default="mean", metadata=opt("binarisation for IoU and F1", tuple(BINARIZATIONS)))
    binarize_value: float = field(default=1.0, metadata=opt("the binarisation's factor"))
    min_area: float = field(default=0.01, metadata=opt("COCO: minimal object area, a fraction of the image"))
    area_from: str = field(default="mask", metadata=opt("COCO: object area from its mask (paper) or its box "
                                                        "(authors' code)", ("mask", "bbox")))
    min_prob: float = field(default=1e-4, metadata=opt("COCO: minimal probability of an object's classes"))
    metrics: list[str] | None = field(default=None, metadata=opt("localisation metrics (default: all)",
                                                                  lambda: metrics_of("localization")))

    benchmark = "localization"


@dataclass
class _Unit:
    name: str
    column: int  # column of the class set
    mask: np.ndarray


@dataclass
class _Prepared:
    image: torch.Tensor  # [1, 3, H, W] normalised, at the model's input size
    classes: list[int]  # the class set (empty for COCO until the model has seen the image)
    units: list[_Unit]
    objects: list[tuple] = field(default_factory=list)  # COCO: (unit name, ImageNet class set, mask)


class LocalizationBenchmark:
    """The items of a localisation dataset, and how to score one.

    Args:
        config: The run configuration.
        lm: The loaded model (default: loaded from the configuration).
        store: Store used to cache the model's predictions for grid selection.
    """

    def __init__(
        self, config: LocalizationConfig, lm: LoadedModel | None = None, store: ResultStore | None = None
    ) -> None:
        self.config = config
        self.dataset: Dataset = open_dataset(config.dataset)
        self.lm = lm or load_model(config.model, config.weights, trust_checkpoint=config.trust_checkpoint)
        self.store = store
        self.limit = config.limit
        self.variants = config.variant_configs()
        self.metrics = list(metrics_for("localization", config.metrics))
        self.objects = "objects" in self.dataset.provides
        self._cell = lru_cache(maxsize=64)(self._cell_image)

    # items ------------------------------------------------------------------------------------------

    @cached_property
    def _objects(self) -> dict[str, object]:
        return {o.id: o for o in self.dataset.objects(self.config.min_area, self.config.area_from)}

    @cached_property
    def _images(self) -> dict[str, ImageItem]:
        return {it.id: it for it in self.dataset.images()}

    @cached_property
    def _own_grids(self) -> bool:
        return self.grids_of_dataset is not None

    @cached_property
    def grids_of_dataset(self) -> list[Grid] | None:
        """The dataset's own grids (the sample photos), classified by the model, or ``None``."""
        c = self.config
        return self.dataset.grids(c.grid, self.limit, c.seed, lambda ims: grid_classes(self.lm, ims, c.device))

    @cached_property
    def grids(self) -> dict[str, Grid]:
        """The grids of a grid dataset, by id."""
        c = self.config
        if self.grids_of_dataset is not None:
            return {g.id: g for g in self.grids_of_dataset}
        unlabelled = [it.id for it in self._images.values() if it.label is None]
        if unlabelled:
            raise ValueError(f"dataset {c.dataset!r} has images without labels ({unlabelled[0]}, ...): grids "
                             "need labelled images")
        cands = [Candidate(it.id, it.label) for it in self._images.values()]  # type: ignore[arg-type]
        if c.selection == "rao":
            cands = self._with_predictions(cands)
        return {g.id: g for g in select_grids(cands, c.grid, c.selection, c.confidence, c.seed, self.limit)}

    def items(self) -> list[str]:
        """All item ids in a deterministic order."""
        if self.objects:
            ids = sorted(self._objects, key=lambda i: (len(i), i))
            return ids[: self.limit] if self.limit else ids
        return sorted(self.grids)

    def _view(self, image: Image.Image, resample: Image.Resampling | None = None) -> Image.Image:
        """The part of an image that goes into a cell: all of it, or the model's centre crop for ``rao``."""
        rao = self.config.selection == "rao" and not self._own_grids
        return self.lm.preprocess.crop_image(image, resample) if rao else image

    def _cell_image(self, item: str) -> Image.Image:
        """The cell image of a grid item, at the cell size (cached for small datasets)."""
        return fit(self._view(self.dataset.grid_image(item)), self.config.cell)

    def _input(self, image: Image.Image) -> torch.Tensor:
        """The normalised model input of an image: at its own size, or resized to the model's fixed input size."""
        size = self.lm.input_size
        return model_input(fit(image, size[::-1]) if size is not None else image, self.lm.preprocess, crop=False)[1]

    def _with_predictions(self, cands: list[Candidate]) -> list[Candidate]:
        """Candidates with the model's confidence on the exact cell image a grid will hold (``rao``)."""
        from tqdm import tqdm

        c = self.config
        key = f"predictions:{c.model}:{c.weights}:cell{c.cell}"
        cached = (self.store.cache_get(key) if self.store else None) or {}
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
        """Image, class set and regions of one item."""
        if self.objects:
            return self._prepare_objects(item)
        grid, c = self.grids[item], self.config
        cells, objects = [], []
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

    def _prepare_objects(self, item: str) -> _Prepared:
        """A COCO image at the model's input size and its objects' masks (the class set needs the model)."""
        rec = self._objects[item]
        crop = self.lm.preprocess.crop
        h, w = self.lm.input_size or (crop, crop)
        x = self._input(fit(rec.load(), (w, h)))  # type: ignore[attr-defined]
        objects = [(f"obj{o.object_id}:{o.category}", o.imagenet,
                    np.asarray(fit(Image.fromarray(o.mask().astype(np.uint8) * 255), (w, h))) > 127)
                   for o in rec.objects]  # type: ignore[attr-defined]
        return _Prepared(x, [], [], objects)

    def _object_classes(self, prep: _Prepared) -> _Prepared | Skip:
        """The class set of a COCO image.

        Each category whose ImageNet classes have a probability of at least ``min_prob`` on the model's input,
        as its most probable class.
        """
        with torch.inference_mode():
            p = self.lm.model(prep.image.to(self.config.device)).softmax(1)[0].cpu()
        classes: list[int] = []
        units = []
        for name, members, mask in prep.objects:
            members = torch.tensor(members)
            if float(p[members].sum()) < self.config.min_prob:
                continue
            rep = int(members[p[members].argmax()])
            if rep not in classes:
                classes.append(rep)
            units.append(_Unit(name, classes.index(rep), mask))
        if len(classes) < 2:
            return Skip(f"{len(classes)} category with probability >= {self.config.min_prob}; VAR needs 2")
        return _Prepared(prep.image, classes, units)

    def score_batch(self, batch: list[tuple[str, _Prepared | Skip]],
                    methods: dict[str, Attributor]) -> list[list[tuple] | Skip]:
        """The rows of several items whose inputs and class sets have one shape, from one attribution per method.

        Returns:
            Per item, its rows or the reason it is skipped.
        """
        c = self.config
        preps = [p if isinstance(p, Skip) or p.classes else self._object_classes(p) for _, p in batch]
        live = [i for i, p in enumerate(preps) if not isinstance(p, Skip)]
        out: list[list[tuple] | Skip] = [p if isinstance(p, Skip) else [] for p in preps]
        if not live:
            return out
        if len({(tuple(preps[i].image.shape), len(preps[i].classes)) for i in live}) > 1:  # type: ignore[union-attr]
            for i in live:  # inputs of different shapes: one at a time
                out[i] = self.score_batch([batch[i]], methods)[0]
            return out
        x = torch.cat([preps[i].image for i in live])  # type: ignore[union-attr]
        x = x.pin_memory().to(c.device, non_blocking=True) if c.device.startswith("cuda") else x
        classes = torch.tensor([preps[i].classes for i in live], device=x.device)  # type: ignore[union-attr]
        (first, first_cfg), *others = self.variants.items()
        units = [(row, i, u) for row, i in enumerate(live) for u in preps[i].units]  # type: ignore[union-attr]
        masks = torch.from_numpy(np.stack([u.mask for _, _, u in units])).to(x.device)
        rows_of = torch.tensor([row for row, _, _ in units], device=x.device)
        cols_of = torch.tensor([u.column for _, _, u in units], device=x.device)
        for name, method in methods.items():
            result = VAR(method, classes=classes, preset=first_cfg).attribute(x)
            variants = {"vanilla": result.maps, first: result.refined,
                        **{v: result.refine(cfg).refined for v, cfg in others}}
            for variant, maps in variants.items():
                scores = self._scores(maps.detach().float()[rows_of, cols_of], masks)
                for n, (_, i, u) in enumerate(units):
                    out[i] += [(u.name, name, variant, metric, values[n]) for metric, values in scores.items()]  # type: ignore[operator]
        return out

    def _scores(self, maps: torch.Tensor, masks: torch.Tensor) -> dict[str, list[float]]:
        """Every metric of maps ``[N, H, W]`` against their regions, computed where the maps are (one transfer)."""
        c = self.config
        if maps.shape[-2:] != masks.shape[-2:]:
            maps = F.interpolate(maps[:, None], size=masks.shape[-2:], mode="bilinear", align_corners=False)[:, 0]
        dead = unscorable(maps)  # the one definition of a map that cannot be scored: its metrics are not recorded
        scores = localization_scores(maps, masks, c.kernel, c.sigma, c.smoothing, c.binarize, c.binarize_value,
                                     c.border, self.metrics)
        scores = {k: torch.where(dead, torch.full_like(v.double(), math.nan), v.double()) for k, v in scores.items()}
        scores["zeroed"] = dead
        scores["no_positive"] = maps.clamp(min=0).flatten(1).sum(1) <= EMPTY_MAP
        values = torch.stack([v.double() for v in scores.values()]).cpu().tolist()
        return dict(zip(scores, values, strict=True))


def run_localization(config: LocalizationConfig, out_dir: str | Path, shard: Shard | None = None,
                     lm: LoadedModel | None = None, on_item: Callable[[str], None] | None = None) -> ResultStore:
    """Run (or resume) a localisation benchmark into ``out_dir``.

    Args:
        config: The configuration.
        out_dir: The run folder (``results.sqlite``, ``config.yaml``).
        shard: This process's shard (default: from torchrun's environment).
        lm: A loaded model to reuse.
        on_item: Called after each item (tests use it to simulate a crash).

    Returns:
        The open store.
    """
    shard = shard or current_shard()
    open_dataset(config.dataset)  # fail on a bad dataset before the run folder is made
    lm = lm or load_model(config.model, config.weights, trust_checkpoint=config.trust_checkpoint)
    methods = {m: get_method(m, lm, **config.method_kwargs(m)) for m in config.methods}  # checked before storing
    store, cfg = open_run(config, out_dir, shard, methods)
    bench = LocalizationBenchmark(cfg, lm, store)
    lm.model.to(cfg.device)
    items = bench.items()  # grids are drawn here, before any worker starts

    def compute(batch: list[tuple[str, object]]) -> list:
        out = bench.score_batch(batch, methods)  # type: ignore[arg-type]
        for item, _ in batch:
            if on_item:
                on_item(item)
        return out

    run_batches(store, items, bench.prepare, compute, shard, desc="localization", batch_size=cfg.batch_size,
                workers=cfg.workers, batch_key=lambda p: (tuple(p.image.shape), len(p.classes)))
    return store


register_benchmark(Benchmark(
    name="localization", config=LocalizationConfig, run=run_localization, needs="grids",
    summary="grid pointing game (Quad), Part-Quad and COCO localisation: region attribution, IoU, F1",
    examples=(
        "attrdist bench localization --dataset sample --out runs/sample",
        "attrdist bench localization --config configs/paper/quad-resnet50.yaml --dataset imagenet:/data/imagenet/val "
        "--out runs/quad",
        "attrdist bench localization --dataset imagenet:/data/imagenet/val --selection rao --cell 224 --out runs/rao",
        "attrdist bench localization --dataset coco:/data/coco --model timm:vit_base_patch16_224 --out runs/coco",
    ),
    plots=bar_plots,
))

