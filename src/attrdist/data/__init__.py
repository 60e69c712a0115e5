"""Data: images, sample photos, their preparation, ImageNet class names and dataset kinds."""

from .imagenet import imagenet_class_names
from .images import ImageReadError, read_image, read_image_bytes, to_rgb
from .prepare import compose_grid, fit, model_input, sample_cell, sample_grid, sample_view, square
from .samples import SAMPLES, sample_image

__all__ = [
    "SAMPLES",
    "ImageReadError",
    "compose_grid",
    "fit",
    "imagenet_class_names",
    "model_input",
    "read_image",
    "read_image_bytes",
    "sample_cell",
    "sample_grid",
    "sample_image",
    "sample_view",
    "square",
    "to_rgb",
]
