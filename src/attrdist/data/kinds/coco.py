"""``coco:PATH``: COCO val2017 objects (instance masks), categories mapped to sets of ImageNet classes."""

from __future__ import annotations

from functools import partial

from ..datasets import CocoImage, read_coco
from ..images import read_image
from .base import Dataset, DatasetKind, ImageItem, ObjectsItem, register_dataset


class CocoDataset(Dataset):
    """COCO images and their objects (read lazily: the annotation file is parsed on first use).

    Args:
        root: COCO root (``val2017/`` and ``annotations/instances_val2017.json``) or the image folder.
    """

    def __init__(self, root: str) -> None:
        self.root = root
        self._cache: dict[tuple[float, str], dict[int, CocoImage]] = {}

    def _read(self, min_area: float, area_from: str) -> dict[int, CocoImage]:
        key = (min_area, area_from)
        if key not in self._cache:
            self._cache[key] = read_coco(self.root, min_area=min_area, area_from=area_from)
        return self._cache[key]

    def objects(self, min_area: float = 0.01, area_from: str = "mask") -> list[ObjectsItem]:
        """Images by id with their objects of at least ``min_area`` of the image (mask or box area)."""
        found = self._read(min_area, area_from)
        return [ObjectsItem(str(i), partial(read_image, found[i].path), tuple(found[i].objects)) for i in sorted(found)]

    def images(self) -> list[ImageItem]:
        """The images that hold at least one mapped object of 1% of the image (unlabelled)."""
        return [ImageItem(o.id, o.load) for o in self.objects()]


register_dataset(DatasetKind(
    name="coco", syntax="coco:PATH", help="COCO val2017 (annotations/instances_val2017.json, val2017/)",
    example="coco:/data/coco", open=CocoDataset, provides=frozenset({"images", "objects"}),
))
