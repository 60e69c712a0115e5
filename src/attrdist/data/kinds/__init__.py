"""Dataset kinds: the one dispatcher behind every benchmark's ``--dataset KIND[:ARG]``.

A kind opens a :class:`Dataset`, which offers what it has: single images (with labels and object masks
where the dataset has them) and, for COCO-like datasets, images with several objects. Each benchmark asks
for what it needs and gets a clear error naming the kinds that have it. Every module of this package
registers its kinds when imported, and all of them are imported here: a new dataset kind is one file
(see ``docs/extending.md``).

Example:
    >>> sorted(DATASETS.names())
    ['coco', 'folder', 'imagenet', 'parts', 'photos', 'sample']
"""

from __future__ import annotations

import importlib
import pkgutil

from .base import (
    DATASETS,
    Dataset,
    DatasetCapabilityError,
    DatasetKind,
    ImageItem,
    ObjectsItem,
    dataset_help,
    open_dataset,
    register_dataset,
)

__all__ = [
    "DATASETS",
    "Dataset",
    "DatasetCapabilityError",
    "DatasetKind",
    "ImageItem",
    "ObjectsItem",
    "dataset_help",
    "open_dataset",
    "register_dataset",
]

# the kinds in the order the help lists them, then any other module of this package (base: the shared types)
for _name in ("sample", "imagenet", "parts", "coco", *(m.name for m in pkgutil.iter_modules(__path__))):
    if _name != "base":
        importlib.import_module(f"{__name__}.{_name}")
