import numpy as np
import pytest
from PIL import Image

from attrdist.data.grids import Candidate, cell_masks, select_grids
from attrdist.data.prepare import compose_grid


def candidates(n_classes=10, per_class=5):
    return [Candidate(f"c{c}_{i}", c, confidence=0.995 if i % 2 == 0 else 0.5, correct=i != 4)
            for c in range(n_classes) for i in range(per_class)]


@pytest.mark.parametrize("selection", ["rao", "random"])
def test_distinct_classes_no_reuse_deterministic(selection):
    grids = select_grids(candidates(), 2, selection, 0.99, seed=3)
    assert grids == select_grids(candidates(), 2, selection, 0.99, seed=3)
    assert grids != select_grids(candidates(), 2, selection, 0.99, seed=4)
    used = [i for g in grids for i in g.items]
    assert len(used) == len(set(used))
    for g in grids:
        assert len(set(g.classes)) == 4
        assert all(item.startswith(f"c{c}_") for item, c in zip(g.items, g.classes, strict=True))
    if selection == "rao":  # only confident, correct images: i in {0, 2}
        assert all(int(i.split("_")[1]) in (0, 2) for i in used)
        assert len(grids) == 5  # 10 classes x 2 eligible images / 4 cells


def test_count_and_errors():
    assert len(select_grids(candidates(), 2, "random", count=2)) == 2
    with pytest.raises(ValueError, match="confidence"):
        select_grids([Candidate("a", 1)], 2, "rao")
    with pytest.raises(ValueError, match="unknown grid selection"):
        select_grids(candidates(), 2, "best")


def test_cells_at_the_right_places():
    colors = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0)]
    grid = np.asarray(compose_grid([Image.new("RGB", (30, 20), c) for c in colors], 2, 8))
    assert grid.shape == (16, 16, 3)
    assert grid[0, 0].tolist() == [255, 0, 0] and grid[0, 15].tolist() == [0, 255, 0]
    assert grid[15, 0].tolist() == [0, 0, 255] and grid[15, 15].tolist() == [255, 255, 0]
    masks = cell_masks(2, 8)
    assert masks.sum((1, 2)).tolist() == [64] * 4 and masks[1, 0, 8] and masks[2, 8, 0]
    obj = np.zeros((8, 8), bool)
    obj[2:4, 2:4] = True
    part = cell_masks(2, 8, [None, obj, None, None])
    assert part[1].sum() == 4 and part[1, 2, 10] and not part[1, 0, 8]


def test_authors_selection_is_their_quad_dataset():
    """The VAR authors' ImageNetQuadDataset: random.seed(42), shuffle the image indices, take them in fours (leftovers
    dropped, classes may repeat) -- written here from that description, on the candidates sorted by id."""
    import random

    cands = candidates(n_classes=3, per_class=3)  # 9 images: 2 grids, one left over
    ordered = sorted(cands, key=lambda c: c.id)
    random.seed(42)
    order = list(range(len(ordered)))
    random.shuffle(order)
    expected = [tuple(ordered[i].id for i in order[g * 4 : g * 4 + 4]) for g in range(2)]
    grids = select_grids(list(reversed(cands)), 2, "authors", seed=42)
    assert [g.items for g in grids] == expected
    assert [g.classes for g in grids] == [tuple(int(i[1]) for i in items) for items in expected]
    assert any(len(set(g.classes)) < 4 for g in grids)  # 3 classes in 4 cells: a class repeats
    assert len(select_grids(cands, 2, "authors", seed=42, count=1)) == 1
