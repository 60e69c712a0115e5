"""Read images robustly: any mode (grayscale, RGBA, palette, 16-bit), EXIF rotation, clear errors."""

from __future__ import annotations

from pathlib import Path
from typing import IO

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .._paths import file_problem

__all__ = ["FORMATS", "ImageReadError", "read_image", "read_image_bytes", "to_rgb"]

#: Larger images are refused before decoding (decompression-bomb guard), in pixels.
MAX_PIXELS = 20_000 * 20_000
#: The most elongated image accepted (longer side / shorter side): resizing the shorter side to the model's
#: input would otherwise blow a thin strip up to gigapixels.
MAX_ASPECT = 100
#: The formats read: those whose header Pillow parses without decoding pixel data, so that the size checks come
#: before any decode. ICO and ICNS are left out: Pillow decodes an embedded PNG frame while opening them (a
#: 657 kB ICO held a 13000x13000 PNG: 650 MB before any check could refuse it).
FORMATS = ("PNG", "JPEG", "GIF", "BMP", "DIB", "WEBP", "TIFF", "PPM", "TGA")  # JPEG covers MPO


class ImageReadError(ValueError):
    """A file could not be read as an image."""


def to_rgb(image: Image.Image) -> Image.Image:
    """Convert any PIL image to 8-bit RGB, honouring EXIF orientation and transparency.

    16-bit and float images are rescaled by their value range (not clipped); transparent pixels are
    composed over white; palette images are expanded.

    Args:
        image: A PIL image of any mode.

    Returns:
        An RGB image.
    """
    image = ImageOps.exif_transpose(image)
    if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        arr = np.asarray(image, dtype=np.float64)
        lo, hi = float(arr.min()), float(arr.max())
        arr = (arr - lo) / (hi - lo) * 255.0 if hi > lo else np.zeros_like(arr)
        image = Image.fromarray(arr.round().astype(np.uint8))
    if image.mode == "P":
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA"):
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(white, rgba)
    return image.convert("RGB")


def read_image_bytes(data: bytes, name: str = "upload", max_pixels: int = MAX_PIXELS) -> Image.Image:
    """Decode an image from bytes (an upload) as RGB.

    Args:
        data: The file's bytes.
        name: Name used in error messages.
        max_pixels: Larger images are refused from their header, before decoding (decompression bombs).

    Returns:
        The RGB image.

    Raises:
        ImageReadError: If the bytes are empty, not an image, truncated or too large.
    """
    import io

    if not data:
        raise ImageReadError(f"{name}: the file is empty")
    return _decode(io.BytesIO(data), name, max_pixels)


def read_image(path: str | Path) -> Image.Image:
    """Read an image file as RGB.

    Args:
        path: The file.

    Returns:
        The RGB image.

    Raises:
        ImageReadError: If the file is missing, empty, not an image, truncated or too large.
    """
    problem = file_problem(path)
    if problem:
        raise ImageReadError(problem)
    return _decode(Path(path), str(path))


def _decode(source: Path | IO[bytes], p: str, max_pixels: int = MAX_PIXELS) -> Image.Image:
    try:
        with Image.open(source, formats=FORMATS) as im:
            if im.width * im.height > max_pixels:
                raise ImageReadError(f"{p}: {im.width}x{im.height} pixels is larger than the limit of "
                                     f"{max_pixels / 1e6:g} megapixels")
            if im.width < 1 or im.height < 1:
                raise ImageReadError(f"{p}: the image has no pixels")
            if max(im.size) > MAX_ASPECT * min(im.size):
                raise ImageReadError(f"{p}: {im.width}x{im.height} pixels is more elongated than {MAX_ASPECT}:1")
            im.load()
            return to_rgb(im)
    except UnidentifiedImageError:
        raise ImageReadError(f"{p}: not an image file in a format read here ({', '.join(FORMATS)})") from None
    except Image.DecompressionBombError as err:  # Pillow's own guard, from the header, before ours could look
        raise ImageReadError(f"{p}: larger than the limit of {max_pixels / 1e6:g} megapixels ({err})") from None
    except (OSError, SyntaxError, ValueError) as err:
        if isinstance(err, ImageReadError):
            raise
        raise ImageReadError(f"{p}: cannot decode the image ({err})") from None
