"""Grids for the grid pointing game (Rao et al., CVPR 2022) and Part-Quad.

Cell ``k`` of an ``n x n`` grid sits at row ``k // n``, column ``k % n``. The region of a cell is the
whole cell (pointing game) or the object's mask inside the cell (Part-Quad).
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from .prepare import model_input

if TYPE_CHECKING:
    from ..models import LoadedModel

__all__ = ["SELECTIONS", "Candidate", "Grid", "cell_boxes", "cell_masks", "grid_classes", "select_grids"]


@dataclass(frozen=True)
class Candidate:
    """An image that may go into a grid.

    Attributes:
        id: Image id (unique in the dataset).
        label: Its class.
        confidence: The model's softmax for ``label`` (Rao selection), if computed.
        correct: Whether the model's top-1 is ``label``, if computed.
    """

    id: str
    label: int
    confidence: float | None = None
    correct: bool | None = None


@dataclass(frozen=True)
class Grid:
    """One grid: image ids and their classes, row-major."""

    id: str
    items: tuple[str, ...]
    classes: tuple[int, ...]


#: Grid selections: ``rao`` (Rao et al.), ``authors`` (the VAR authors' ``ImageNetQuadDataset``), ``random``.
SELECTIONS = ("authors", "rao", "random")


def select_grids(
    candidates: Sequence[Candidate], n: int = 2, selection: str = "authors", confidence: float = 0.99, seed: int = 0,
    count: int | None = None,
) -> list[Grid]:
    """Build grids deterministically for a seed.

    Args:
        candidates: The images.
        n: Grid side (``n * n`` cells).
        selection: ``"rao"`` (Rao et al., CVPR 2022): only correctly classified images with confidence >=
            ``confidence``, distinct classes per grid drawn without replacement, each image used once;
            ``"authors"`` (the VAR authors' ``ImageNetQuadDataset``, the paper's Quad-ImageNet): the images,
            sorted by id, shuffled once with the seed (the authors use 42) and taken ``n * n`` at a time, so
            classes may repeat within a grid; ``"random"``: random combinations of distinct classes, each
            image used once, no filter.
        confidence: Threshold of the ``rao`` selection.
        seed: Seed of the draw.
        count: Maximal number of grids (default: as many as possible).

    Returns:
        The grids.

    Raises:
        ValueError: On an unknown selection, or ``rao`` candidates without confidences.
    """
    cells = n * n
    rng = random.Random(seed)
    if selection == "authors":
        ordered = sorted(candidates, key=lambda c: c.id)
        order = list(range(len(ordered)))
        rng.shuffle(order)
        total = len(order) // cells if count is None else min(count, len(order) // cells)
        return [Grid(id=f"grid{g:06d}", items=tuple(ordered[i].id for i in order[g * cells : (g + 1) * cells]),
                     classes=tuple(ordered[i].label for i in order[g * cells : (g + 1) * cells]))
                for g in range(total)]
    if selection == "rao":
        if any(c.confidence is None or c.correct is None for c in candidates):
            raise ValueError("the 'rao' selection needs each candidate's confidence and correctness")
        pool = [c for c in candidates if c.correct and c.confidence is not None and c.confidence >= confidence]
    elif selection == "random":
        pool = list(candidates)
    else:
        raise ValueError(f"unknown grid selection {selection!r}; use one of {', '.join(SELECTIONS)}")
    by_class: dict[int, list[Candidate]] = defaultdict(list)
    for c in sorted(pool, key=lambda c: c.id):
        by_class[c.label].append(c)
    for lst in by_class.values():
        rng.shuffle(lst)
    grids: list[Grid] = []
    while count is None or len(grids) < count:
        available = sorted(k for k, v in by_class.items() if v)
        if len(available) < cells:
            break
        classes = rng.sample(available, cells)
        items = tuple(by_class[k].pop().id for k in classes)
        grids.append(Grid(id=f"grid{len(grids):06d}", items=items, classes=tuple(classes)))
    return grids


def cell_boxes(n: int, cell: int) -> list[tuple[int, int, int, int]]:
    """``(top, left, bottom, right)`` of each cell, row-major."""
    return [((k // n) * cell, (k % n) * cell, (k // n + 1) * cell, (k % n + 1) * cell) for k in range(n * n)]


def cell_masks(n: int, cell: int, objects: Sequence[np.ndarray | None] | None = None) -> np.ndarray:
    """Regions of the cells, ``[n*n, n*cell, n*cell]`` bool.

    Args:
        n: Grid side.
        cell: Cell size in pixels.
        objects: Per cell, an object mask at cell resolution (Part-Quad) or ``None`` for the whole cell.

    Returns:
        The masks.
    """
    side = n * cell
    masks = np.zeros((n * n, side, side), dtype=bool)
    for k, (t, left, b, r) in enumerate(cell_boxes(n, cell)):
        obj = None if objects is None else objects[k]
        masks[k, t:b, left:r] = True if obj is None else obj
    return masks


def grid_classes(lm: LoadedModel, cells: Sequence[Image.Image], device: str = "cpu") -> list[int]:
    """The predicted class of each cell image, classified on its own (a grid's class set).

    Args:
        lm: The model.
        cells: The cell images (each goes through the model's resize and centre crop).
        device: Torch device.

    Returns:
        One class per cell; duplicates are replaced by the cell's next most probable class.
    """
    import torch  # the one function here that runs a model: the grids, their cells and masks need no torch

    x = torch.cat([model_input(c, lm.preprocess)[1] for c in cells]).to(device)
    with torch.inference_mode():
        order = lm.model.to(device)(x).argsort(1, descending=True).tolist()
    chosen: list[int] = []
    for ranked in order:
        chosen.append(next(c for c in ranked if c not in chosen))
    return chosen
