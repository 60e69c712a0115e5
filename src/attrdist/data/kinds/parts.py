"""``parts:PATH[:ANNOTATIONS]``: object or part segmentations in COCO JSON (PartImageNet), for Part-Quad."""

from __future__ import annotations

from ..datasets import read_part_segmentations
from .base import DatasetKind, register_dataset
from .imagenet import LabeledFolder


def _open(arg: str) -> LabeledFolder:
    root, _, annotations = arg.partition(":")
    return LabeledFolder(root, lambda path: read_part_segmentations(path, annotations or None))


register_dataset(DatasetKind(
    name="parts", syntax="parts:PATH[:ANNOTATIONS]",
    help="images with COCO-format segmentations (PartImageNet): a cell's region is its object's mask",
    example="parts:/data/PartImageNet/images:/data/PartImageNet/val.json", open=_open,
    provides=frozenset({"images", "labels", "masks"}),
))
