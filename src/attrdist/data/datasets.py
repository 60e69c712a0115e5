"""Readers for datasets the user owns, in their standard on-disk layouts.

* ImageNet val: a flat folder with ``LOC_val_solution.csv`` (Kaggle layout), or the devkit ground truth
  (``ILSVRC2012_validation_ground_truth.txt`` + ``meta.mat``), or class sub-folders;
* any image folder whose sub-folders are WordNet ids or class indices;
* COCO val2017 (``annotations/instances_val2017.json``, via pycocotools), objects with instance masks;
* part or object segmentations in COCO JSON (PartImageNet) for Part-Quad: the object is the union of its
  parts, its class comes from the WordNet id in the file name.

Errors name what is missing and the layout that was expected.
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache, partial
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

import numpy as np

from .imagenet import imagenet_class_names

if TYPE_CHECKING:
    from pycocotools.coco import COCO

__all__ = [
    "DatasetLayoutError",
    "CocoImage",
    "CocoObject",
    "LabeledImage",
    "coco_category_sets",
    "read_coco",
    "read_image_folder",
    "read_imagenet_val",
    "read_part_segmentations",
]

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"}
_WNID = re.compile(r"n\d{8}")


class DatasetLayoutError(FileNotFoundError):
    """A dataset folder does not have the expected layout."""


@dataclass(frozen=True)
class LabeledImage:
    """An image with its class, and for segmentation datasets a lazy object mask."""

    id: str
    path: Path
    label: int
    mask: Callable[[], np.ndarray] | None = field(default=None, compare=False)


@dataclass(frozen=True)
class CocoObject:
    """One COCO object: its category, ImageNet class set, area fractions and a lazy instance mask."""

    image_id: int
    object_id: int
    category: str
    imagenet: tuple[int, ...]
    area_fraction: float
    mask: Callable[[], np.ndarray] = field(compare=False)
    bbox_fraction: float = 0.0


class CocoImage(NamedTuple):
    """An image of COCO and its kept objects (:func:`read_coco`)."""

    path: Path
    height: int
    width: int
    objects: list[CocoObject]


def _wnid_index() -> dict[str, int]:
    _, wnids = imagenet_class_names()
    return {w: i for i, w in enumerate(wnids)}


def _images_in(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())


def read_image_folder(root: str | Path) -> list[LabeledImage]:
    """Images in class sub-folders named by WordNet id (``n01440764``) or class index (``0``..``999``).

    Args:
        root: The folder.

    Returns:
        Labelled images, sorted by id.

    Raises:
        DatasetLayoutError: If no sub-folder names a class.
    """
    root = Path(root)
    if not root.is_dir():
        raise DatasetLayoutError(f"{root}: no such folder")
    index = _wnid_index()
    out = []
    for sub in sorted(p for p in root.iterdir() if p.is_dir()):
        if sub.name in index:
            label = index[sub.name]
        elif sub.name.isdigit() and int(sub.name) < 1000:
            label = int(sub.name)
        else:
            continue
        out += [LabeledImage(f"{sub.name}/{p.name}", p, label) for p in _images_in(sub)]
    if not out:
        raise DatasetLayoutError(
            f"{root}: no class sub-folders with images; expected sub-folders named by WordNet id (n01440764) "
            "or class index (0-999)"
        )
    return out


def read_imagenet_val(root: str | Path) -> list[LabeledImage]:
    """ImageNet validation images with their labels, from any of the standard layouts.

    Looks for, in order: ``LOC_val_solution.csv`` (in ``root`` or its parents' usual places; images in
    ``root`` or ``root/ILSVRC/Data/CLS-LOC/val``), the devkit files
    ``ILSVRC2012_validation_ground_truth.txt`` and ``meta.mat`` (anywhere under ``root``), and class
    sub-folders.

    Args:
        root: The validation folder (or the dataset root holding it).

    Returns:
        Labelled images, sorted by id.

    Raises:
        DatasetLayoutError: If no layout matches; the message lists what was looked for.
    """
    root = Path(root)
    if not root.is_dir():
        raise DatasetLayoutError(f"{root}: no such folder")
    csvs = sorted(root.rglob("LOC_val_solution.csv"))
    if csvs:
        index = _wnid_index()
        folders = [root, root / "ILSVRC" / "Data" / "CLS-LOC" / "val", *[c.parent for c in csvs]]
        out = []
        with csvs[0].open(newline="") as f:
            for row in csv.DictReader(f):
                wnid = row["PredictionString"].split()[0]
                path = next((d / f"{row['ImageId']}.JPEG" for d in folders if (d / f"{row['ImageId']}.JPEG").exists()),
                            None)
                if path is None:
                    continue
                if wnid not in index:
                    raise DatasetLayoutError(f"{csvs[0]}: unknown WordNet id {wnid!r}")
                out.append(LabeledImage(row["ImageId"], path, index[wnid]))
        if not out:
            raise DatasetLayoutError(f"{csvs[0]} lists images, but none of them is in {folders[0]} or {folders[1]}")
        return sorted(out, key=lambda r: r.id)
    gts = sorted(root.rglob("ILSVRC2012_validation_ground_truth.txt"))
    metas = sorted(root.rglob("meta.mat"))
    if gts:
        if not metas:
            raise DatasetLayoutError(f"{gts[0]} found but no devkit meta.mat to map its ILSVRC2012 ids to classes")
        return _devkit(root, gts[0], metas[0])
    try:
        return read_image_folder(root)
    except DatasetLayoutError:
        raise DatasetLayoutError(
            f"{root}: not an ImageNet val layout; expected LOC_val_solution.csv with the JPEGs, or the devkit's "
            "ILSVRC2012_validation_ground_truth.txt and meta.mat, or class sub-folders (WordNet ids)"
        ) from None


def _devkit(root: Path, gt: Path, meta: Path) -> list[LabeledImage]:
    from scipy.io import loadmat

    synsets = loadmat(str(meta), squeeze_me=True)["synsets"]
    id_to_wnid = {int(s["ILSVRC2012_ID"]): str(s["WNID"]) for s in synsets if int(s["num_children"]) == 0}
    index = _wnid_index()
    labels = [index[id_to_wnid[int(v)]] for v in gt.read_text().split()]
    images = sorted(p for p in root.rglob("ILSVRC2012_val_*.JPEG"))
    by_number = {int(p.stem.rsplit("_", 1)[1]): p for p in images}
    out = [LabeledImage(by_number[i + 1].stem, by_number[i + 1], lab) for i, lab in enumerate(labels)
           if i + 1 in by_number]
    if not out:
        raise DatasetLayoutError(f"{root}: devkit ground truth found but no ILSVRC2012_val_*.JPEG images")
    return out


def _decode_rle_or_poly(seg: object, h: int, w: int) -> np.ndarray:
    from pycocotools import mask as mask_utils

    if isinstance(seg, list):
        rles = mask_utils.frPyObjects(seg, h, w)
        rle = mask_utils.merge(rles)
    elif isinstance(seg, dict) and isinstance(seg.get("counts"), list):
        rle = mask_utils.frPyObjects(seg, h, w)
    else:
        rle = seg
    return mask_utils.decode(rle).astype(bool)


def _union_mask(segs: list[object], h: int, w: int) -> np.ndarray:
    """The union of an image's segmentations (polygons or RLE) as one boolean ``[h, w]`` mask."""
    return np.any([_decode_rle_or_poly(s, h, w) for s in segs], axis=0)


def read_part_segmentations(root: str | Path, annotations: str | Path | None = None) -> list[LabeledImage]:
    """Images with object masks from a COCO-format segmentation file (PartImageNet's layout).

    The object's mask is the union of all annotations of the image; its class is the ImageNet class of
    the WordNet id in the file name (``n01440764_10029.JPEG``).

    Args:
        root: Folder with the images (searched recursively).
        annotations: The COCO JSON file (default: the only ``*.json`` in ``root``).

    Returns:
        Labelled images with lazy masks.

    Raises:
        DatasetLayoutError: If the annotation file is missing or names no image with a WordNet id.
    """
    root = Path(root)
    if annotations is None:
        found = sorted(root.rglob("*.json"))
        if len(found) != 1:
            raise DatasetLayoutError(f"{root}: expected one COCO JSON annotation file, found {len(found)}; pass it")
        annotations = found[0]
    data = json.loads(Path(annotations).read_text())
    files = {p.name: p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES}
    index = _wnid_index()
    anns: dict[int, list] = {}
    for a in data.get("annotations", []):
        anns.setdefault(a["image_id"], []).append(a["segmentation"])
    out = []
    for img in data.get("images", []):
        m = _WNID.search(img["file_name"])
        path = files.get(Path(img["file_name"]).name)
        if not m or m.group(0) not in index or path is None or img["id"] not in anns:
            continue
        h, w, segs = img["height"], img["width"], anns[img["id"]]
        out.append(LabeledImage(
            Path(img["file_name"]).stem, path, index[m.group(0)],
            mask=partial(_union_mask, segs, h, w),
        ))
    if not out:
        raise DatasetLayoutError(f"{annotations}: no annotated image in {root} has a WordNet id in its file name")
    return sorted(out, key=lambda r: r.id)


@lru_cache(maxsize=1)
def coco_category_sets() -> tuple[dict[str, tuple[int, ...]], tuple[str, ...]]:
    """COCO category name -> ImageNet class set (shipped data), and the categories without counterpart."""
    data = json.loads(resources.files("attrdist.data").joinpath("coco_to_imagenet.json").read_text())
    sets = {k: tuple(v["imagenet"]) for k, v in data["categories"].items()}
    return sets, tuple(data["no_counterpart"])


def read_coco(root: str | Path, annotations: str | Path | None = None, min_area: float = 0.01,
              area_from: str = "mask") -> dict[int, CocoImage]:
    """COCO objects per image, keeping objects of at least ``min_area`` of the image with an ImageNet set.

    Args:
        root: COCO root (with ``val2017/`` and ``annotations/``) or the image folder.
        annotations: The instances JSON (default: ``annotations/instances_val2017.json``).
        min_area: Minimal object area as a fraction of the image (default 1%, the paper's).
        area_from: ``"mask"`` (the annotation's segmentation area, the paper's) or ``"bbox"`` (its box, as
            the VAR authors' ``filter_large_objects`` measures it, with ``min_area=0.025``).

    Returns:
        ``{image_id: CocoImage}`` for the images with at least one kept object.

    Raises:
        DatasetLayoutError: If the annotation file or the images are missing.
    """
    from pycocotools.coco import COCO

    if area_from not in ("mask", "bbox"):
        raise ValueError(f"area_from must be 'mask' or 'bbox', got {area_from!r}")
    root = Path(root)
    ann = Path(annotations) if annotations else root / "annotations" / "instances_val2017.json"
    if not ann.exists():
        raise DatasetLayoutError(
            f"{ann}: COCO annotation file not found (expected <root>/annotations/instances_val2017.json)"
        )
    image_dir = root / "val2017" if (root / "val2017").is_dir() else root
    import contextlib
    import io

    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO(str(ann))
    sets, _ = coco_category_sets()
    names = {c["id"]: c["name"] for c in coco.loadCats(coco.getCatIds())}
    out: dict[int, CocoImage] = {}
    for img in coco.loadImgs(sorted(coco.getImgIds())):
        path = image_dir / img["file_name"]
        h, w = img["height"], img["width"]
        objs = []
        for a in coco.loadAnns(coco.getAnnIds(imgIds=img["id"], iscrowd=False)):
            cat = names[a["category_id"]]
            box = float(a["bbox"][2] * a["bbox"][3]) if a.get("bbox") else float(a["area"])
            if cat not in sets or (box if area_from == "bbox" else a["area"]) < min_area * h * w:
                continue
            objs.append(CocoObject(img["id"], a["id"], cat, sets[cat], a["area"] / (h * w),
                                   mask=partial(_annotation_mask, coco, a), bbox_fraction=box / (h * w)))
        if objs and path.exists():
            out[img["id"]] = CocoImage(path, h, w, objs)
    if not out:
        raise DatasetLayoutError(f"{image_dir}: no image of {ann} found with an object of a mapped category")
    return out


def _annotation_mask(coco: COCO, annotation: dict[str, object]) -> np.ndarray:
    """One COCO annotation's boolean mask."""
    return np.asarray(coco.annToMask(annotation), dtype=bool)
