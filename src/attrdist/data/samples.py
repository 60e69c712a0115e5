"""Real sample photos shipped with scikit-image, and a 2x2 grid of them (the default input)."""

from __future__ import annotations

from functools import lru_cache

from PIL import Image

__all__ = ["SAMPLES", "sample_grid", "sample_image"]

#: scikit-image sample photos the default model recognises (name -> what it shows).
SAMPLES: dict[str, str] = {
    "chelsea": "a tabby cat",
    "coffee": "a cup of espresso",
    "rocket": "a rocket on its launch pad",
    "camera": "a photographer with a camera on a tripod (grayscale)",
}


@lru_cache(maxsize=16)
def _decoded(name: str) -> Image.Image:
    import skimage.data

    from .images import to_rgb

    loader = getattr(skimage.data, name, None)
    if loader is None:
        raise ValueError(f"no sample {name!r}; choose one of {sorted(SAMPLES)}")
    return to_rgb(Image.fromarray(loader()))


def sample_image(name: str) -> Image.Image:
    """One scikit-image sample photo as RGB.

    Args:
        name: A key of :data:`SAMPLES` (or any ``skimage.data`` image function that needs no download).

    Returns:
        The image.

    Raises:
        ValueError: If there is no such sample.
    """
    return _decoded(name).copy()  # decoded once per process; callers get their own copy


def sample_grid(names: tuple[str, ...] = tuple(SAMPLES), cell: int = 224) -> Image.Image:
    """A grid of sample photos, each centre-cropped to a square and resized to ``cell`` pixels.

    Args:
        names: Sample names in row-major order; a square number of them (default: the 4 of :data:`SAMPLES`).
        cell: Side of one cell in pixels.

    Returns:
        The RGB grid image of side ``n * cell``.
    """
    n = round(len(names) ** 0.5)
    if n * n != len(names):
        raise ValueError(f"a grid needs a square number of images, got {len(names)}")
    grid = Image.new("RGB", (n * cell, n * cell))
    for i, name in enumerate(names):
        im = sample_image(name)
        side = min(im.size)
        left, top = (im.width - side) // 2, (im.height - side) // 2
        im = im.crop((left, top, left + side, top + side)).resize((cell, cell), Image.Resampling.BICUBIC)
        grid.paste(im, ((i % n) * cell, (i // n) * cell))
    return grid
