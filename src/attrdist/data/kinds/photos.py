"""``photos[:DIR]``: real photographs shipped inside installable packages, labelled by hand (no download).

The list (:file:`attrdist/data/photos.json`) names each photo's package, its path inside the package, its
ImageNet class (labelled from the picture and checked against a model), its licence and its author where the
package says. The photos are read from the installed packages and never copied into this repository: a
missing package is named with its install command, and the photos of the installed ones are used.

Debian packages install under ``/``; without root, unpack them into a folder and name it:
``dpkg -x PACKAGE.deb DIR/PACKAGE`` (or ``DIR``), then ``--dataset photos:DIR``. Python packages are found
where ``import`` finds them.

Grids: seeded random sets of four photos of four distinct classes, each mirrored with probability 1/2, so
that the class set of a grid is always its four classes.
"""

from __future__ import annotations

import importlib.util
import json
import random
import warnings
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache, partial
from importlib import resources
from pathlib import Path

from PIL import Image, ImageOps

from ..grids import Grid
from ..images import ImageReadError, read_image, read_image_bytes
from ..rcc import RccError, read_member
from .base import Dataset, DatasetKind, ImageItem, register_dataset

__all__ = ["MissingPhotosError", "Photo", "PhotosDataset", "read_manifest"]

#: The default number of grids.
DEFAULT_GRIDS = 48


class MissingPhotosError(FileNotFoundError):
    """Too few of the listed photos are installed (the message names the packages and how to install them)."""


@dataclass(frozen=True)
class Photo:
    """One photo of the list.

    Attributes:
        id: Unique id.
        source: ``debian`` or ``pypi``.
        package: The package that ships it.
        path: For Debian, the installed absolute path; for PyPI, the path inside the importable ``module``.
        label: Its ImageNet class index.
        label_name: The class name.
        licence: The licence the package states for it.
        credit: Author or origin where the package names one.
        version: The package version it was checked in.
        member: The file inside the Qt resource bundle (``.rcc``) at ``path`` (GCompris), or empty.
        module: For PyPI packages, the module whose folder holds ``path``.
        checked: The model check of the label (its rank among the model's classes).
        note: Why the label is what it is, where it needs saying.
        set: ``main`` (one photo per class) or ``extra`` (more photos; classes repeat).
    """

    id: str
    source: str
    package: str
    path: str
    label: int
    label_name: str
    licence: str
    credit: str = ""
    version: str = ""
    member: str = ""
    module: str = ""
    checked: str = ""
    note: str = ""
    set: str = "main"

    def install_hint(self) -> str:
        """How to install the package that ships the photo."""
        if self.source == "debian":
            return (f"apt-get install {self.package}  (or: apt-get download {self.package} && "
                    f"dpkg -x {self.package}_*.deb DIR/{self.package}, then --dataset photos:DIR)")
        return f"pip install {self.package}"

    def locate(self, roots: tuple[Path, ...]) -> Path | None:
        """The photo's file if its package is installed (or unpacked under one of ``roots``)."""
        if self.source == "pypi":
            spec = importlib.util.find_spec(self.module or self.package)
            if spec is None or not spec.submodule_search_locations:
                return None
            p = Path(next(iter(spec.submodule_search_locations))) / self.path
            return p if p.is_file() else None
        rel = self.path.lstrip("/")
        for base in (*[r / self.package for r in roots], *roots, Path("/")):
            if (base / rel).is_file():
                return base / rel
        return None


def read_manifest(path: str | Path | None = None) -> list[Photo]:
    """The photo list (default: the one shipped with attrdist).

    Raises:
        ValueError: On a malformed list (the entry is named).
    """
    text = Path(path).read_text() if path else resources.files("attrdist.data").joinpath("photos.json").read_text()
    entries = json.loads(text)["photos"]
    photos = []
    for n, e in enumerate(entries):
        try:
            photos.append(Photo(**e))
        except TypeError as err:
            raise ValueError(f"photo list entry {n} ({e.get('id', '?') if isinstance(e, dict) else e!r}): "
                             f"{err}") from None
        p = photos[-1]
        if p.source not in ("debian", "pypi") or not isinstance(p.label, int) or not 0 <= p.label < 1000:
            raise ValueError(f"photo list entry {n} ({p.id}): source must be debian or pypi and the "
                             "label an ImageNet class index")
        if ".." in Path(p.path).parts or (p.source == "pypi" and Path(p.path).is_absolute()):
            raise ValueError(f"photo list entry {n} ({p.id}): the path must stay inside its package")
    ids = [p.id for p in photos]
    if len(set(ids)) != len(ids):
        raise ValueError("photo list: ids must be unique")
    return photos


@lru_cache(maxsize=256)
def _load(path: str, member: str) -> Image.Image:
    if not member:
        return read_image(path)
    try:
        return read_image_bytes(read_member(path, member), f"{path}!{member}")
    except RccError as err:
        raise ImageReadError(str(err)) from None


class PhotosDataset(Dataset):
    """The installed photos: single labelled images (and their mirror images), and grids of four classes."""

    def __init__(self, roots: tuple[Path, ...] = (), manifest: str | Path | None = None,
                 min_photos: int = 4) -> None:
        listed = read_manifest(manifest)
        self.found = {p.id: (p, f) for p in listed if (f := p.locate(roots)) is not None}
        missing = sorted({p.package: p for p in listed if p.id not in self.found}.values(), key=lambda p: p.package)
        hints = "\n  ".join(p.install_hint() for p in missing)
        if len(self.found) < min_photos:
            raise MissingPhotosError(
                f"{len(self.found)} of the {len(listed)} listed photos are installed (at least {min_photos} "
                f"needed); install:\n  {hints}")
        if missing:
            warnings.warn(f"{len(listed) - len(self.found)} listed photos are not installed; for all of them:\n  "
                          f"{hints}", stacklevel=2)

    def _image(self, item: str) -> Image.Image:
        name, _, op = item.partition("~")
        photo, path = self.found[name]
        image = _load(str(path), photo.member).copy()
        return ImageOps.mirror(image) if op == "flip" else image

    def images(self) -> list[ImageItem]:
        """Every installed photo with its label, in a fixed order that mixes the packages' folders.

        The order is by a checksum of the id, so that the first N (``--max-items``) are not all birds.
        """
        ids = sorted(self.found, key=lambda i: (zlib.crc32(i.encode()), i))
        return [ImageItem(i, partial(self._image, i), label=self.found[i][0].label) for i in ids]

    def grid_image(self, item: str) -> Image.Image:
        """A photo padded to a square with white (mirrored for ``~flip``): the cell of a grid.

        Many of the photos are cut-outs composed over white; padding keeps the whole object in its cell.
        """
        image = self._image(item)
        side = max(image.size)
        return ImageOps.pad(image, (side, side), color=(255, 255, 255))

    def grids(self, n: int, count: int | None, seed: int, classify: Callable[[list[Image.Image]], list[int]]) -> list:
        """``count`` (default 48) grids of ``n * n`` photos of distinct classes, seeded; classes from the list."""
        by_class: dict[int, list[str]] = {}
        for pid, (photo, _) in sorted(self.found.items()):
            by_class.setdefault(photo.label, []).append(pid)
        if len(by_class) < n * n:
            raise MissingPhotosError(f"a {n}x{n} grid needs {n * n} classes; the installed photos have "
                                     f"{len(by_class)}")
        rng = random.Random(seed)
        grids = []
        for g in range(count or DEFAULT_GRIDS):
            labels = rng.sample(sorted(by_class), n * n)
            items = tuple(f"{rng.choice(by_class[c])}{'~flip' if rng.random() < 0.5 else ''}" for c in labels)
            grids.append(Grid(f"photos{g:04d}", items, tuple(labels)))
        return grids


def _open(arg: str) -> PhotosDataset:
    return PhotosDataset(roots=(Path(arg),) if arg else ())


register_dataset(DatasetKind(
    name="photos", syntax="photos[:DIR]",
    help="hand-labelled real photos shipped in Debian and PyPI packages, read where installed (or unpacked in DIR)",
    example="photos", open=_open, provides=frozenset({"images", "labels", "grids"}), needs_argument=False,
))
