"""``sample``: the photos bundled with scikit-image, no download (views for single-image benchmarks, grids)."""

from __future__ import annotations

import random
from collections.abc import Callable
from functools import partial

from PIL import Image

from ..grids import Grid
from ..prepare import sample_view
from ..samples import SAMPLES
from .base import Dataset, DatasetKind, ImageItem, register_dataset

#: Views of each sample photo for single-image benchmarks: the photo, its mirror image, the centred 80% crop
#: of both.
VIEWS = ("", "~flip", "~zoom", "~zoom~flip")


class SampleDataset(Dataset):
    """The bundled photos: 16 views as single images; grids of the 4 photos in random orders and mirrorings."""

    def images(self) -> list[ImageItem]:
        """Every view of every photo, sorted by id (``chelsea``, ``chelsea~flip``, ...)."""
        ids = sorted(f"{n}{v}" for n in SAMPLES for v in VIEWS)
        return [ImageItem(i, partial(sample_view, i)) for i in ids]

    def grid_image(self, item: str) -> Image.Image:
        """A photo's centred square (mirrored for ``~flip``): the cell of a sample grid."""
        return sample_view(item, squared=True)

    def grids(self, n: int, count: int | None, seed: int, classify: Callable[[list[Image.Image]], list[int]]) -> list:
        """``count`` (default 12) grids of the photos in seeded random orders, each mirrored with probability 1/2.

        The class of each photo is the model's prediction for its centred square (made distinct: the next most
        probable class where two coincide), so that the grids need no labels.
        """
        names = list(SAMPLES)
        labels = dict(zip(names, classify([self.grid_image(name) for name in names]), strict=True))
        rng = random.Random(seed)
        grids = []
        for g in range(count or 12):
            order = rng.sample(names, len(names))[: n * n]
            items = tuple(f"{name}{'~flip' if rng.random() < 0.5 else ''}" for name in order)
            grids.append(Grid(f"sample{g:04d}", items, tuple(labels[name] for name in order)))
        return grids


register_dataset(DatasetKind(
    name="sample", syntax="sample", help="the photos bundled with scikit-image (no download)", example="sample",
    open=lambda arg: SampleDataset(), provides=frozenset({"images", "grids"}), needs_argument=False,
))
