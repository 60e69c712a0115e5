"""Single-image items for the insertion and sanity benchmarks: the sample photos or a dataset's images."""

from __future__ import annotations

from collections.abc import Callable

from PIL import Image

from ..data.datasets import read_image_folder, read_imagenet_val
from ..data.images import read_image
from ..data.samples import SAMPLES, sample_image

__all__ = ["image_items"]

#: Views of each sample photo: the photo, its mirror image, and a centred 80% crop of both.
_VIEWS = ("", "~flip", "~zoom", "~zoom~flip")


def _sample_view(item: str) -> Image.Image:
    name, *ops = item.split("~")
    im = sample_image(name)
    if "zoom" in ops:
        w, h = im.size
        im = im.crop((w // 10, h // 10, w - w // 10, h - h // 10))
    if "flip" in ops:
        im = im.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    return im


def image_items(dataset: str, limit: int | None = None) -> dict[str, Callable[[], Image.Image]]:
    """Item id -> image loader, in a deterministic order.

    Args:
        dataset: ``sample`` (views of the scikit-image photos), ``imagenet:PATH`` or ``folder:PATH``.
        limit: Keep the first ``limit`` items.

    Returns:
        The loaders.

    Raises:
        ValueError: On another dataset kind.
    """
    kind, _, path = dataset.partition(":")
    if kind == "sample":
        items = {f"{n}{v}": (lambda it=f"{n}{v}": _sample_view(it)) for n in SAMPLES for v in _VIEWS}
    elif kind in ("imagenet", "folder"):
        recs = read_imagenet_val(path) if kind == "imagenet" else read_image_folder(path)
        items = {r.id: (lambda p=r.path: read_image(p)) for r in recs}
    else:
        raise ValueError(f"dataset {dataset!r}: this benchmark reads sample, imagenet:PATH or folder:PATH")
    keys = sorted(items)[:limit] if limit else sorted(items)
    return {k: items[k] for k in keys}
