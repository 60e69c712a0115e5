"""Real sample photos shipped with scikit-image (views, cells and grids of them: :mod:`attrdist.data.prepare`)."""

from __future__ import annotations

from functools import lru_cache

from PIL import Image

__all__ = ["SAMPLES", "sample_image"]

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
