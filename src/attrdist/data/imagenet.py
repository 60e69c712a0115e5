"""The 1000 ImageNet-1k classes: :func:`attrdist.labels.imagenet_class_names`, re-exported for the data layer."""

from ..labels import imagenet_class_names

__all__ = ["imagenet_class_names"]
