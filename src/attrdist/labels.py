"""The 1000 ImageNet-1k classes (index, WordNet id, name), shipped as package data (``data/imagenet_classes.tsv``).

Below every layer that names classes: models (their label sets), methods and data read it from here.
"""

from __future__ import annotations

from functools import lru_cache
from importlib import resources

__all__ = ["imagenet_class_names"]


@lru_cache(maxsize=1)
def _table() -> tuple[tuple[str, ...], tuple[str, ...]]:
    text = resources.files("attrdist").joinpath("data", "imagenet_classes.tsv").read_text(encoding="utf-8")
    rows = [line.split("\t") for line in text.splitlines()[1:] if line]
    assert [int(r[0]) for r in rows] == list(range(1000)), "corrupt imagenet_classes.tsv"
    return tuple(r[2] for r in rows), tuple(r[1] for r in rows)


def imagenet_class_names() -> tuple[list[str], list[str]]:
    """Return ``(names, wnids)``, each a list of 1000 strings in the standard class order."""
    names, wnids = _table()
    return list(names), list(wnids)
