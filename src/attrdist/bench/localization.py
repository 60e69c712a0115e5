"""Localisation benchmarks: the grid pointing game (Quad), Part-Quad and COCO objects.

Vanilla and every VAR variant are computed from the same raw maps (one attribution call per item and
method). Per-item results go to the run's SQLite store with the full configuration.

Datasets (``--dataset KIND:PATH``):

* ``sample``: grids of real photos shipped with scikit-image, classified by the model (no download);
* ``imagenet:PATH``: ImageNet val in any standard layout; ``folder:PATH``: class sub-folders;
* ``parts:PATH[:ANNOTATIONS]``: Part-Quad from COCO-format segmentations (PartImageNet);
* ``coco:PATH``: COCO val2017 objects; the class set is the categories present in the image.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from ..data.datasets import (
    LabeledImage,
    read_coco,
    read_image_folder,
    read_imagenet_val,
    read_part_segmentations,
)
from ..data.grids import Candidate, Grid, cell_masks, compose_grid, select_grids
from ..data.images import read_image
from ..data.samples import SAMPLES, sample_image
from ..methods import Attributor, get_method
from ..metrics import localization_scores
from ..models import LoadedModel, load_model
from ..var import DEFAULT_PRESET, NORMALIZATIONS, get_preset, var
from .config import RunConfig, open_run
from .runner import Shard, Skip, current_shard, run_items
from .store import ResultStore

__all__ = ["LocalizationConfig", "LocalizationBenchmark", "run_localization"]

#: The variant study (``--variants all``): the named presets and each normalisation with the paper's
#: temperatures.
ALL_VARIANTS: dict[str, dict] = {
    "paper": {"preset": "paper"},
    "authors-code": {"preset": "authors-code"},
    **{f"paper+{n}": {"preset": "paper", "normalize": n} for n in NORMALIZATIONS if n != "none"},
}


@dataclass
class LocalizationConfig(RunConfig):
    """Configuration of a localisation run (saved in the store and as ``config.yaml``).

    Attributes:
        dataset: ``sample``, ``imagenet:PATH``, ``folder:PATH``, ``parts:PATH[:ANNOTATIONS]`` or ``coco:PATH``.
        grid: Grid side n (n x n cells).
        cell: Cell size in pixels (224: full resolution 448 grids; 112: 224 grids).
        selection: ``rao`` (confident, correct, distinct classes, each image once) or ``random``.
        confidence: Confidence threshold of the ``rao`` selection.
        smoothing: ``gaussian``, ``box`` or ``none``, applied to the positive part of the map (the paper's
            order: positive part, then an 11x11 Gaussian).
        kernel: Smoothing kernel size (11).
        sigma: Gaussian sigma (2.0: OpenCV's ``GaussianBlur((11, 11), 0)`` of the VAR authors' demo; the RISE
            code's 11x11 kernel has 5).
        border: Smoothing border: ``reflect`` (reflect-101, OpenCV's default, as in the authors' demo) or
            ``zeros``.
        binarize: Binarisation rule for IoU/F1 (see :data:`attrdist.metrics.BINARIZATIONS`).
        binarize_value: The rule's factor.
        min_area: COCO: minimal object area fraction.
        min_prob: COCO: minimal summed ImageNet probability of an object's class set.

    The other fields are those of :class:`~attrdist.bench.config.RunConfig`; ``max_items`` limits grids
    or COCO images (12 grids for ``sample`` when unset).
    """

    grid: int = 2
    cell: int = 112
    selection: str = "random"
    confidence: float = 0.99
    smoothing: str = "gaussian"
    kernel: int = 11
    sigma: float = 2.0
    border: str = "reflect"
    binarize: str = "mean"
    binarize_value: float = 1.0
    min_area: float = 0.01
    min_prob: float = 1e-4

    benchmark = "localization"


@dataclass
class _Unit:
    name: str
    column: int  # column of the class set
    mask: np.ndarray


@dataclass
class _Prepared:
    image: torch.Tensor  # [1, 3, H, W] normalised
    classes: list[int]
    units: list[_Unit]


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
        self.lm = lm or load_model(config.model, config.weights)
        self.store = store
        self.kind, _, self.path = config.dataset.partition(":")
        self.limit = config.limit
        self._cells: dict[tuple[str, int | None], Image.Image] = {}
        if self.kind not in ("sample", "imagenet", "folder", "parts", "coco"):
            raise ValueError(f"unknown dataset kind {self.kind!r}; use sample, imagenet:PATH, folder:PATH, "
                             "parts:PATH or coco:PATH")
        if self.kind != "sample" and not self.path:
            raise ValueError(f"dataset {config.dataset!r} needs a path: {self.kind}:PATH")
        self.variants = {name: get_preset(spec.get("preset", DEFAULT_PRESET), **{k: v for k, v in spec.items()
                                                                          if k != "preset"})
                         for name, spec in config.variants.items()}

    # items ------------------------------------------------------------------------------------------

    @cached_property
    def _records(self) -> dict[str, LabeledImage]:
        if self.kind == "imagenet":
            recs = read_imagenet_val(self.path)
        elif self.kind == "folder":
            recs = read_image_folder(self.path)
        elif self.kind == "parts":
            root, _, ann = self.path.partition(":")
            recs = read_part_segmentations(root, ann or None)
        else:
            recs = []
        return {r.id: r for r in recs}

    @cached_property
    def _coco(self) -> dict:
        return read_coco(self.path, min_area=self.config.min_area)

    @cached_property
    def grids(self) -> dict[str, Grid]:
        """The grids of a grid dataset, by id."""
        c = self.config
        if self.kind == "sample":
            return {g.id: g for g in self._sample_grids()}
        cands = [Candidate(r.id, r.label) for r in self._records.values()]
        if c.selection == "rao":
            cands = self._with_predictions(cands)
        return {g.id: g for g in select_grids(cands, c.grid, c.selection, c.confidence, c.seed, self.limit)}

    def items(self) -> list[str]:
        """All item ids in a deterministic order."""
        if self.kind == "coco":
            ids = [str(i) for i in sorted(self._coco)]
            return ids[: self.limit] if self.limit else ids
        return sorted(self.grids)

    def _sample_grids(self) -> list[Grid]:
        # grids of the scikit-image photos: random orders and flips, classes from the model's predictions
        from ..explain import grid_classes

        names = list(SAMPLES)
        # each photo's predicted class, made distinct (the next most probable one where two coincide)
        labels = dict(zip(names, grid_classes(self.lm, [self._sample_cell(n) for n in names], self.config.device),
                          strict=True))
        rng = random.Random(self.config.seed)
        grids = []
        for g in range(self.limit or 12):
            order = rng.sample(names, len(names))[: self.config.grid**2]
            items = tuple(f"{n}{'~flip' if rng.random() < 0.5 else ''}" for n in order)
            grids.append(Grid(f"sample{g:04d}", items, tuple(labels[n] for n in order)))
        return grids

    def _sample_cell(self, item: str, size: int | None = None):  # noqa: ANN202
        """A sample photo's square centre crop (mirrored for ``~flip``), resized to ``size``; cached."""
        key = (item, size)
        if key not in self._cells:
            name, _, flip = item.partition("~")
            im = sample_image(name)
            side = min(im.size)
            im = im.crop(((im.width - side) // 2, (im.height - side) // 2, (im.width + side) // 2,
                          (im.height + side) // 2))
            im = im.transpose(Image.Transpose.FLIP_LEFT_RIGHT) if flip else im
            self._cells[key] = im.resize((size, size), Image.Resampling.BILINEAR) if size else im
        return self._cells[key]

    def _predict(self, images: dict) -> dict[str, tuple[int, float]]:
        """Top-1 class and its probability per image (preprocessed as the model expects)."""
        out = {}
        model = self.lm.model.to(self.config.device)
        for key, im in images.items():
            x = self.lm.preprocess(im)[None].to(self.config.device)
            with torch.no_grad():
                p = model(x).softmax(1)[0]
            out[key] = (int(p.argmax()), float(p.max()))
        return out

    def _with_predictions(self, cands: list[Candidate]) -> list[Candidate]:
        from tqdm import tqdm

        key = f"predictions:{self.config.model}:{self.config.weights}"
        cached = (self.store.cache_get(key) if self.store else None) or {}
        todo = [c for c in cands if c.id not in cached]
        for i, c in enumerate(tqdm(todo, desc="classifying candidates", unit="img", disable=not todo)):
            cached[c.id] = self._predict({c.id: read_image(self._records[c.id].path)})[c.id]
            if self.store and (i % 256 == 255 or i == len(todo) - 1):
                self.store.cache_put(key, cached)
        return [Candidate(c.id, c.label, confidence=cached[c.id][1] if cached[c.id][0] == c.label else 0.0,
                          correct=cached[c.id][0] == c.label) for c in cands]

    # one item ----------------------------------------------------------------------------------------

    def prepare(self, item: str) -> _Prepared | Skip:
        """Image, class set and regions of one item."""
        pre = self.lm.preprocess
        if self.kind == "coco":
            return self._prepare_coco(int(item))
        grid, c = self.grids[item], self.config
        cells, objects = [], []
        for it in grid.items:
            if self.kind == "sample":
                cells.append(self._sample_cell(it, c.cell))
                objects.append(None)
                continue
            rec = self._records[it]
            cells.append(read_image(rec.path))
            if rec.mask is not None:
                m = torch.from_numpy(rec.mask()).float()[None, None]
                objects.append(F.interpolate(m, size=(c.cell, c.cell), mode="nearest")[0, 0].numpy() > 0.5)
            else:
                objects.append(None)
        image = compose_grid(cells, c.grid, c.cell)
        masks = cell_masks(c.grid, c.cell, objects)
        x = pre.normalize(pre.to_unit(image))[None]
        units = [_Unit(f"cell{k}", k, masks[k]) for k in range(len(grid.items))]
        return _Prepared(x, list(grid.classes), units)

    def _prepare_coco(self, image_id: int) -> _Prepared | Skip:
        path, h, w, objs = self._coco[image_id]
        pre = self.lm.preprocess
        image = read_image(path)
        x = pre.normalize(pre.to_unit(image))[None]  # full image, no crop: masks stay aligned
        with torch.no_grad():
            p = self.lm.model.to(self.config.device)(x.to(self.config.device)).softmax(1)[0].cpu()
        classes: list[int] = []
        units = []
        for o in objs:
            members = torch.tensor(o.imagenet)
            if float(p[members].sum()) < self.config.min_prob:
                continue
            rep = int(members[p[members].argmax()])  # the category's most probable ImageNet class
            if rep not in classes:
                classes.append(rep)
            units.append(_Unit(f"obj{o.object_id}:{o.category}", classes.index(rep), o.mask()))
        if len(classes) < 2:
            return Skip(f"{len(classes)} category with probability >= {self.config.min_prob}; VAR needs 2")
        return _Prepared(x, classes, units)

    def score(self, item: str, methods: dict[str, Attributor]) -> list[tuple] | Skip:
        """All result rows of one item: vanilla and every variant from the same raw maps."""
        prep = self.prepare(item)
        if isinstance(prep, Skip):
            return prep
        c = self.config
        x = prep.image.to(c.device)
        masks = torch.from_numpy(np.stack([u.mask for u in prep.units]))
        cols = torch.tensor([u.column for u in prep.units])
        rows = []
        for name, method in methods.items():
            maps = method.explain(x, torch.tensor([prep.classes], device=x.device)).maps.detach()
            variants = {"vanilla": maps, **{v: var(maps, preset=cfg, warn_identical=False).refined
                                             for v, cfg in self.variants.items()}}
            for variant, m in variants.items():
                m = m[0, cols].float().cpu()
                if m.shape[-2:] != masks.shape[-2:]:
                    m = F.interpolate(m[None], size=masks.shape[-2:], mode="bilinear", align_corners=False)[0]
                scores = localization_scores(m, masks, c.kernel, c.sigma, c.smoothing, c.binarize, c.binarize_value,
                                             c.border)
                zero = (m.flatten(1).abs().amax(1) == 0).double()
                for i, u in enumerate(prep.units):
                    rows += [(u.name, name, variant, metric, float(v[i])) for metric, v in scores.items()]
                    rows.append((u.name, name, variant, "zeroed", float(zero[i])))
        return rows


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
    store, cfg = open_run(config, out_dir, shard)
    bench = LocalizationBenchmark(cfg, lm, store)
    methods = {m: get_method(m, bench.lm.model.to(cfg.device)) for m in cfg.methods}

    def compute(item: str) -> list[tuple] | Skip:
        rows = bench.score(item, methods)
        if on_item:
            on_item(item)
        return rows

    run_items(store, bench.items(), compute, shard, desc="localization")
    return store
