"""Data: images, sample photos and ImageNet class names."""

from .imagenet import imagenet_class_names
from .images import ImageReadError, read_image, read_image_bytes, to_rgb
from .samples import SAMPLES, sample_grid, sample_image

__all__ = [
    "SAMPLES",
    "ImageReadError",
    "imagenet_class_names",
    "read_image",
    "read_image_bytes",
    "sample_grid",
    "sample_image",
    "to_rgb",
]
