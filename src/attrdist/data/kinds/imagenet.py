"""``imagenet:PATH`` (ImageNet val in any standard layout) and ``folder:PATH`` (class sub-folders)."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

from ..datasets import LabeledImage, read_image_folder, read_imagenet_val
from ..images import read_image
from .base import Dataset, DatasetKind, ImageItem, register_dataset


class LabeledFolder(Dataset):
    """Labelled images read by ``reader`` from a folder.

    Args:
        path: The folder.
        reader: ``path -> [LabeledImage]``.
    """

    def __init__(self, path: str, reader: Callable[[str], list[LabeledImage]]) -> None:
        self.records = reader(path)

    def images(self) -> list[ImageItem]:
        """The images with their labels (and object masks where the records have them), sorted by id."""
        return [ImageItem(r.id, partial(read_image, r.path), r.label, r.mask)
                for r in sorted(self.records, key=lambda r: r.id)]


register_dataset(DatasetKind(
    name="imagenet", syntax="imagenet:PATH",
    help="ImageNet val: LOC_val_solution.csv beside the JPEGs, the devkit ground truth + meta.mat, or class folders",
    example="imagenet:/data/imagenet/val", open=lambda arg: LabeledFolder(arg, read_imagenet_val),
    provides=frozenset({"images", "labels"}),
))
register_dataset(DatasetKind(
    name="folder", syntax="folder:PATH", help="a folder of WordNet-id (n01440764) or class-index (0-999) sub-folders",
    example="folder:/data/my-photos", open=lambda arg: LabeledFolder(arg, read_image_folder),
    provides=frozenset({"images", "labels"}),
))
