"""Localisation metrics against an independent reference of the paper's protocol (appendix B): the positive
part of the map, then an 11x11 Gaussian as the VAR authors' demo applies it (OpenCV's
``GaussianBlur(map, (11, 11), 0)``), then region attribution and the binarised scores, in plain loops."""

import numpy as np
import pytest
import torch

from attrdist.bench.localization import LocalizationConfig
from attrdist.metrics import localization_scores

cv2 = pytest.importorskip("cv2")


def paper_reference(signed_map, region):
    """One map and one boolean region -> (region attribution, IoU, F1), written from the paper's text."""
    h, w = signed_map.shape
    positive = np.zeros((h, w))
    for i in range(h):
        for j in range(w):
            positive[i, j] = max(signed_map[i, j], 0.0)
    blurred = cv2.GaussianBlur(positive, (11, 11), 0)  # the authors' call: sigma from the kernel size, reflect-101
    total = inside = 0.0
    for i in range(h):
        for j in range(w):
            total += blurred[i, j]
            inside += blurred[i, j] if region[i, j] else 0.0
    ra = inside / total if total > 1e-7 else 0.0
    mean = total / (h * w)
    tp = fp = fn = 0
    for i in range(h):
        for j in range(w):
            hit = blurred[i, j] > mean and blurred[i, j] > 0
            tp += hit and region[i, j]
            fp += hit and not region[i, j]
            fn += (not hit) and region[i, j]
    iou = tp / (tp + fp + fn) if tp + fp + fn else 0.0
    prec = tp / (tp + fp) if tp + fp else 0.0
    rec = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * prec * rec / (prec + rec) if prec + rec else 0.0
    return ra, iou, f1


@pytest.fixture
def signed_maps():
    """Signed maps like IG or gradient maps: positive and negative evidence close to each other."""
    rng = np.random.default_rng(3)
    maps = rng.normal(size=(4, 40, 40))
    maps[:, :20, :20] += 1.5  # positive evidence in the first quadrant
    maps[:, :20, 20:] -= 1.5  # negative evidence next to it
    regions = np.zeros((4, 40, 40), dtype=bool)
    regions[0, :20, :20] = regions[1, :20, 20:] = regions[2, 20:, :20] = regions[3, 20:, 20:] = True
    return maps, regions


def test_default_metrics_follow_the_paper_order_and_the_authors_blur(signed_maps):
    maps, regions = signed_maps
    cfg = LocalizationConfig()  # the benchmark's defaults are the paper protocol
    ours = localization_scores(torch.from_numpy(maps), torch.from_numpy(regions), cfg.kernel, cfg.sigma,
                               cfg.smoothing, cfg.binarize, cfg.binarize_value, cfg.border)
    for n in range(4):
        ra, iou, f1 = paper_reference(maps[n], regions[n])
        assert float(ours["region_attribution"][n]) == pytest.approx(ra, rel=1e-9, abs=1e-12)
        assert float(ours["iou"][n]) == pytest.approx(iou, rel=1e-9, abs=1e-12)
        assert float(ours["f1"][n]) == pytest.approx(f1, rel=1e-9, abs=1e-12)


def test_zero_padding_option_against_a_literal_convolution():
    rng = np.random.default_rng(4)
    m = np.maximum(rng.normal(size=(1, 17, 23)), 0)
    region = np.zeros((1, 17, 23), dtype=bool)
    region[0, 3:9, 4:15] = True
    r = np.arange(11) - 5
    g = np.exp(-(r**2) / (2 * 3.0**2))
    k = np.outer(g, g) / np.outer(g, g).sum()
    blurred = np.zeros((17, 23))
    for i in range(17):
        for j in range(23):
            for di in range(-5, 6):
                for dj in range(-5, 6):
                    if 0 <= i + di < 17 and 0 <= j + dj < 23:
                        blurred[i, j] += k[di + 5, dj + 5] * m[0, i + di, j + dj]
    expected = blurred[region[0]].sum() / blurred.sum()
    ours = localization_scores(torch.from_numpy(m), torch.from_numpy(region), 11, 3.0, "gaussian", border="zeros")
    assert float(ours["region_attribution"][0]) == pytest.approx(expected, rel=1e-12)


def test_the_order_matters_for_signed_maps(signed_maps):
    """Blurring the signed map before the positive part (the old order) gives another region attribution."""
    maps, regions = signed_maps
    blur_first = [cv2.GaussianBlur(maps[n], (11, 11), 0).clip(min=0) for n in range(4)]
    old = [b[regions[n]].sum() / b.sum() for n, b in enumerate(blur_first)]
    new = localization_scores(torch.from_numpy(maps), torch.from_numpy(regions))["region_attribution"]
    assert max(abs(float(new[n]) - old[n]) for n in range(4)) > 0.01
