import numpy as np
import pytest
import torch

from attrdist.metrics import binarize, f1_score, iou, localization_scores, precision, recall, region_attribution, smooth


@pytest.fixture
def maps_masks():
    gen = torch.Generator().manual_seed(0)
    maps = torch.randn(6, 16, 16, generator=gen, dtype=torch.float64)
    masks = torch.zeros(6, 16, 16, dtype=torch.bool)
    for i in range(6):
        masks[i, (i % 2) * 8 : (i % 2) * 8 + 8, (i // 2 % 2) * 8 : (i // 2 % 2) * 8 + 8] = True
    return maps, masks


def test_region_attribution_against_quantus(maps_masks):
    quantus = pytest.importorskip("quantus")
    maps, masks = maps_masks
    pos = maps.clamp(min=0).numpy()[:, None]
    rma = quantus.RelevanceMassAccuracy(abs=False, normalise=False, disable_warnings=True)
    ref = rma.evaluate_batch(a_batch=pos, s_batch=masks.numpy()[:, None].astype(float))
    np.testing.assert_allclose(region_attribution(maps, masks).numpy(), ref, rtol=1e-12)


def test_grid_cell_score_against_quantus_focus(maps_masks):
    quantus = pytest.importorskip("quantus")
    maps, _ = maps_masks
    quadrants = [(0, 8, 0, 8), (0, 8, 8, 16), (8, 16, 0, 8), (8, 16, 8, 16)]  # Focus' order
    for q, (t, b, lft, r) in enumerate(quadrants):
        mask = torch.zeros(6, 16, 16, dtype=torch.bool)
        mask[:, t:b, lft:r] = True
        c = np.zeros((6, 4))
        c[:, q] = 1
        ref = quantus.Focus(disable_warnings=True).evaluate_batch(a_batch=maps.numpy()[:, None], c_batch=c)
        # Focus adds a small epsilon to its denominator
        np.testing.assert_allclose(region_attribution(maps, mask).numpy(), ref, rtol=1e-8)


def test_hand_computed_cases():
    m = torch.zeros(3, 4, 4, dtype=torch.float64)
    m[1, 0, 0] = 2.0
    m[1, 3, 3] = 6.0
    m[2] = -1.0  # only negative evidence
    empty = torch.zeros(3, 4, 4, dtype=torch.bool)
    whole = torch.ones(3, 4, 4, dtype=torch.bool)
    corner = empty.clone()
    corner[:, 0, 0] = True
    assert region_attribution(m, empty).tolist() == [0.0, 0.0, 0.0]  # empty region
    assert region_attribution(m, whole).tolist() == [0.0, 1.0, 0.0]  # all-zero / negative map -> 0
    assert region_attribution(m, corner).tolist() == [0.0, 0.25, 0.0]
    pred = binarize(m, corner)  # A+ > mean(A+)
    assert pred[1].sum() == 2 and not pred[0].any() and not pred[2].any()
    assert iou(pred, corner).tolist() == [0.0, 0.5, 0.0]
    assert precision(pred, corner).tolist() == [0.0, 0.5, 0.0]
    assert recall(pred, corner).tolist() == [0.0, 1.0, 0.0]
    torch.testing.assert_close(f1_score(pred, corner), torch.tensor([0.0, 2 / 3, 0.0], dtype=torch.float64))
    assert iou(whole, whole).tolist() == [1.0, 1.0, 1.0]


def test_counts_are_shared_only_while_the_maps_are_unchanged():
    # the binarised metrics share one count of the same (pred, masks) pair; a changed or another map counts anew
    pred = torch.zeros(2, 4, 4, dtype=torch.bool)
    pred[:, 0, :2] = True
    region = torch.zeros(2, 4, 4, dtype=torch.bool)
    region[:, 0, :] = True
    assert iou(pred, region).tolist() == [0.5, 0.5] and recall(pred, region).tolist() == [0.5, 0.5]
    pred[1, 0, 2:] = True  # in place: a new version of the same tensor
    assert iou(pred, region).tolist() == [0.5, 1.0] and precision(pred, region).tolist() == [1.0, 1.0]
    other = torch.zeros(2, 4, 4, dtype=torch.bool)
    assert iou(other, region).tolist() == [0.0, 0.0] and recall(pred, region).tolist() == [0.5, 1.0]
    region[0] = True
    assert recall(pred, region).tolist() == [2 / 16, 1.0]


def test_binarization_rules():
    m = torch.arange(16, dtype=torch.float64).view(1, 4, 4)
    r = torch.zeros(1, 4, 4, dtype=torch.bool)
    r[0, 0, :3] = True
    assert binarize(m, r, "region_size").sum() == 3 and binarize(m, r, "region_size")[0, 3, 3]
    assert binarize(m, r, "max_fraction", 0.5).sum() == 8  # values 8..15 > 7.5
    with pytest.raises(ValueError, match="unknown binarisation"):
        binarize(m, r, "otsu")


def test_smoothing():
    m = torch.zeros(1, 21, 21, dtype=torch.float64)
    m[0, 10, 10] = 1.0
    for kind in ("gaussian", "box"):
        s = smooth(m, 11, 5.0, kind)
        assert float(s.sum()) == pytest.approx(1.0) and s.shape == m.shape
    assert torch.equal(smooth(m, kind="none"), m)
    with pytest.raises(ValueError, match="odd"):
        smooth(m, 10)


def test_scores_shapes(maps_masks):
    maps, masks = maps_masks
    scores = localization_scores(maps, masks)
    assert set(scores) == {"region_attribution", "iou", "precision", "recall", "f1"}
    assert all(v.shape == (6,) and ((v >= 0) & (v <= 1)).all() for v in scores.values())
    with pytest.raises(ValueError, match="same shape"):
        localization_scores(maps, masks[:, :8])


@pytest.mark.parametrize("kind", ["gaussian", "box"])
def test_separable_smoothing_equals_2d_kernel(kind):
    import torch.nn.functional as F

    m = torch.randn(3, 30, 40, dtype=torch.float64)
    r = torch.arange(11, dtype=torch.float64) - 5
    g = torch.exp(-(r**2) / 50) if kind == "gaussian" else torch.ones(11, dtype=torch.float64)
    k2 = torch.outer(g, g)
    ref = F.conv2d(m[:, None], (k2 / k2.sum())[None, None], padding=5)[:, 0]
    torch.testing.assert_close(smooth(m, 11, 5.0, kind, border="zeros"), ref)
