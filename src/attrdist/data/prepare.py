"""Image preparation, one module for every caller.

The sample photos, ``attrdist explain``, the web explorer and the benchmarks see the same pixels for the
same request:

* :func:`square`, :func:`fit` and :func:`compose_grid`: centre square crops, resizing to a cell (no crop,
  bilinear, as torchvision's ``Resize`` in the references) and grids of cells;
* :func:`sample_view` and :func:`sample_cell`: views of the bundled photos (``"chelsea~flip~zoom"``);
* :func:`sample_grid`: the default input of ``attrdist explain`` (a 2x2 grid of the photos);
* :func:`model_input`: the normalised input tensor of a model for an image (its resize and centre crop, or
  the image as it is).
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from typing import TYPE_CHECKING

from PIL import Image

from .samples import SAMPLES, sample_image

if TYPE_CHECKING:
    from torch import Tensor

    from ..models.loading import Preprocess

__all__ = ["compose_grid", "fit", "model_input", "sample_cell", "sample_grid", "sample_view", "square"]

#: How images are resized to a grid cell (torchvision's ``Resize`` default, as the references use).
RESAMPLE = Image.Resampling.BILINEAR


def square(image: Image.Image) -> Image.Image:
    """The centred square crop of the image's short side."""
    side = min(image.size)
    left, top = (image.width - side) // 2, (image.height - side) // 2
    return image.crop((left, top, left + side, top + side))


def fit(image: Image.Image, size: int | tuple[int, int]) -> Image.Image:
    """The whole image resized to ``size`` (a side or ``(width, height)``), aspect ratio not kept."""
    wh = (size, size) if isinstance(size, int) else size
    return image if image.size == wh else image.resize(wh, RESAMPLE)


def compose_grid(images: Sequence[Image.Image], n: int, cell: int) -> Image.Image:
    """Paste ``n * n`` images, each resized to ``cell x cell`` (:func:`fit`), row-major into one grid."""
    if len(images) != n * n:
        raise ValueError(f"a {n}x{n} grid needs {n * n} images, got {len(images)}")
    grid = Image.new("RGB", (n * cell, n * cell))
    for k, im in enumerate(images):
        grid.paste(fit(im.convert("RGB"), cell), ((k % n) * cell, (k // n) * cell))
    return grid


def sample_view(item: str, squared: bool = False) -> Image.Image:
    """A view of a bundled photo: ``"name"`` plus operations ``~zoom`` (the centred 80%) and ``~flip`` (mirror).

    Args:
        item: ``"chelsea"``, ``"chelsea~flip"``, ``"coffee~zoom~flip"``, ...
        squared: Take the centred square crop (after the zoom, before the mirror).

    Returns:
        The RGB image.

    Raises:
        ValueError: On an unknown photo or operation.
    """
    name, *ops = item.split("~")
    unknown = set(ops) - {"zoom", "flip"}
    if unknown:
        raise ValueError(f"unknown sample view operation(s) {sorted(unknown)} in {item!r}; use ~zoom and ~flip")
    im = sample_image(name)
    if "zoom" in ops:
        w, h = im.size
        im = im.crop((w // 10, h // 10, w - w // 10, h - h // 10))
    if squared:
        im = square(im)
    if "flip" in ops:
        im = im.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    return im


@lru_cache(maxsize=64)
def _cell(item: str, size: int) -> Image.Image:
    return fit(sample_view(item, squared=True), size)


def sample_cell(item: str, size: int) -> Image.Image:
    """A bundled photo's view as a grid cell: its centred square, resized to ``size`` (cached per process)."""
    return _cell(item, size).copy()


def sample_grid(names: Sequence[str] = tuple(SAMPLES), cell: int = 224) -> Image.Image:
    """A grid of bundled photos (:func:`sample_cell` each), the default input of ``attrdist explain``.

    Args:
        names: Sample views in row-major order; a square number of them (default: the 4 photos).
        cell: Side of one cell in pixels.

    Returns:
        The RGB grid image of side ``n * cell``.

    Example:
        >>> sample_grid(cell=32).size
        (64, 64)
    """
    n = round(len(names) ** 0.5)
    if n * n != len(names):
        raise ValueError(f"a grid needs a square number of images, got {len(names)}")
    return compose_grid([sample_cell(name, cell) for name in names], n, cell)


def model_input(image: Image.Image, preprocess: Preprocess, crop: bool = True) -> tuple[Image.Image, Tensor]:
    """What the model sees for an image: ``(the RGB image it sees, its normalised tensor [1, 3, H, W])``.

    Args:
        image: An RGB image.
        preprocess: The model's preprocessing.
        crop: Apply the model's resize and centre crop; ``False`` feeds the image at its own size.
    """
    shown = preprocess.crop_image(image) if crop else image
    return shown, preprocess.normalize(preprocess.to_unit(shown))[None]
