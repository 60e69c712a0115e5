"""The dataset kinds' shared types and registry (:mod:`attrdist.data.kinds` imports every kind module)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from ...registry import Registry
from ..datasets import CocoObject

if TYPE_CHECKING:
    from ..grids import Grid

__all__ = [
    "DATASETS",
    "Dataset",
    "DatasetCapabilityError",
    "DatasetKind",
    "ImageItem",
    "ObjectsItem",
    "dataset_help",
    "open_dataset",
    "register_dataset",
]


class DatasetCapabilityError(ValueError):
    """The dataset lacks what a benchmark needs (the message names the kinds that have it)."""


@dataclass(frozen=True)
class ImageItem:
    """One image of a dataset.

    Attributes:
        id: Unique id in the dataset (stable across runs: it keys the results).
        load: Reads the RGB image.
        label: Its ImageNet class, where the dataset has one.
        mask: Reads the object's mask at the image's resolution (Part-Quad), where the dataset has one.
    """

    id: str
    load: Callable[[], Image.Image] = field(compare=False)
    label: int | None = None
    mask: Callable[[], np.ndarray] | None = field(default=None, compare=False)


@dataclass(frozen=True)
class ObjectsItem:
    """One image with several annotated objects (COCO)."""

    id: str
    load: Callable[[], Image.Image] = field(compare=False)
    objects: tuple[CocoObject, ...] = ()


class Dataset:
    """What a dataset kind opens; override the capabilities the dataset has.

    Attributes:
        spec: The ``--dataset`` value it was opened from.
        provides: What it offers (its kind's :attr:`DatasetKind.provides`).
    """

    spec: str = ""
    provides: frozenset[str] = frozenset()

    def images(self) -> list[ImageItem]:
        """Single images, in a deterministic order."""
        raise DatasetCapabilityError(f"dataset {self.spec!r} has no single images; {_having('images')}")

    def image(self, item: str) -> ImageItem:
        """One image by id."""
        if not hasattr(self, "_by_id"):
            self._by_id = {it.id: it for it in self.images()}
        return self._by_id[item]

    def grid_image(self, item: str) -> Image.Image:
        """The image a grid cell is made from (default: the image itself)."""
        return self.image(item).load()

    def objects(self, min_area: float, area_from: str) -> list[ObjectsItem]:
        """Images with annotated objects of at least ``min_area`` of the image, in a deterministic order."""
        raise DatasetCapabilityError(f"dataset {self.spec!r} has no object annotations; {_having('objects')}")

    def grids(self, n: int, count: int | None, seed: int,
              classify: Callable[[list[Image.Image]], list[int]]) -> list[Grid] | None:
        """Grids of its own (the sample photos) or ``None``: grids are then drawn from labelled :meth:`images`."""
        return None


@dataclass(frozen=True)
class DatasetKind:
    """A registered dataset kind.

    Attributes:
        name: The kind, the part before ``:`` in ``--dataset``.
        syntax: How to write it (``imagenet:PATH``).
        help: One line: what it reads.
        example: A full example value.
        open: ``argument -> Dataset`` (the argument is what follows ``KIND:``, empty if none).
        provides: What its datasets offer: ``images``, ``labels``, ``masks``, ``objects``, ``grids``.
        needs_argument: Whether ``KIND:ARG`` needs the argument.
    """

    name: str
    syntax: str
    help: str
    example: str
    open: Callable[[str], Dataset]
    provides: frozenset[str]
    needs_argument: bool = True


#: The dataset kinds, the single list that ``--dataset``, the docs and the tests read.
DATASETS: Registry[DatasetKind] = Registry("dataset kind")


def register_dataset(kind: DatasetKind) -> DatasetKind:
    """Add a dataset kind to :data:`DATASETS` (returns it)."""
    return DATASETS.register(kind.name)(kind)


def _having(capability: str) -> str:
    kinds = [k.syntax for _, k in DATASETS.items() if capability in k.provides]
    return f"kinds with {capability}: {', '.join(kinds) or 'none'}"


def open_dataset(spec: str, needs: str | tuple[str, ...] | None = None) -> Dataset:
    """Open ``KIND[:ARG]``.

    Args:
        spec: The ``--dataset`` value.
        needs: A capability the caller needs (``images``, ``labels``, ``objects``, ...), or several of which any
            one will do, checked up front.

    Returns:
        The dataset.

    Raises:
        ValueError: On an unknown kind or a missing argument.
        DatasetCapabilityError: If the kind lacks ``needs``.
    """
    name, _, arg = spec.partition(":")
    if name not in DATASETS:
        raise ValueError(f"unknown dataset kind {name!r}; use one of: "
                         + ", ".join(k.syntax for _, k in DATASETS.items()))
    kind = DATASETS.get(name)
    if kind.needs_argument and not arg:
        raise ValueError(f"dataset {spec!r} needs a path: {kind.syntax} (e.g. {kind.example})")
    wanted = (needs,) if isinstance(needs, str) else tuple(needs or ())
    if wanted and not kind.provides & set(wanted):
        raise DatasetCapabilityError(f"dataset kind {name!r} has no {' or '.join(wanted)}; "
                                     + "; ".join(_having(n) for n in wanted))
    ds = kind.open(arg)
    ds.spec, ds.provides = spec, kind.provides
    return ds


def dataset_help() -> str:
    """The ``--dataset`` syntax, one line per kind with an example (for the command line's help)."""
    return "\n".join(f"  {k.syntax:<28} {k.help} (e.g. {k.example})" for _, k in DATASETS.items())


# the built-in kinds in the order the help lists them, then any other module of this package
