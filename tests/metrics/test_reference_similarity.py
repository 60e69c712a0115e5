"""Sanity-check similarities against independent references: scipy's correlations, SSIM written out in plain
loops from its definition (window 5, as the paper's appendix B states), and the Pearson correlation of
scikit-image HOG features (the paper's "Pearson correlation of the histogram of gradients")."""

import numpy as np
import pytest
from scipy import stats

from attrdist.metrics.similarity import SIMILARITIES, similarities


@pytest.fixture
def pair():
    rng = np.random.default_rng(5)
    a = rng.normal(size=(48, 48))
    b = 0.6 * a + rng.normal(size=(48, 48))
    return a, b


def ssim_reference(x, y, win=5, data_range=2.0):
    """SSIM (Wang et al. 2004) with a uniform win x win window, sample covariances, mean over full windows."""
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    h, w = x.shape
    r = win // 2
    values = []
    for i in range(r, h - r):
        for j in range(r, w - r):
            px = x[i - r : i + r + 1, j - r : j + r + 1].ravel()
            py = y[i - r : i + r + 1, j - r : j + r + 1].ravel()
            n = px.size
            mx, my = px.sum() / n, py.sum() / n
            vx = ((px - mx) ** 2).sum() / (n - 1)
            vy = ((py - my) ** 2).sum() / (n - 1)
            cxy = ((px - mx) * (py - my)).sum() / (n - 1)
            values.append((2 * mx * my + c1) * (2 * cxy + c2) / ((mx**2 + my**2 + c1) * (vx + vy + c2)))
    return sum(values) / len(values)


def test_rank_and_linear_correlations(pair):
    a, b = pair
    assert SIMILARITIES["spearman"](a, b) == pytest.approx(stats.spearmanr(a.ravel(), b.ravel())[0], rel=1e-12)
    assert SIMILARITIES["spearman_abs"](a, b) == pytest.approx(
        stats.spearmanr(np.abs(a).ravel(), np.abs(b).ravel())[0], rel=1e-12)
    assert SIMILARITIES["pearson"](a, b) == pytest.approx(stats.pearsonr(a.ravel(), b.ravel())[0], rel=1e-12)
    cos = sum(u * v for u, v in zip(a.ravel(), b.ravel(), strict=True)) / np.sqrt((a**2).sum() * (b**2).sum())
    assert SIMILARITIES["cosine"](a, b) == pytest.approx(cos, rel=1e-12)


def test_ssim_is_the_papers(pair):
    a, b = pair
    expected = ssim_reference(a / np.abs(a).max(), b / np.abs(b).max())
    assert SIMILARITIES["ssim"](a, b) == pytest.approx(expected, rel=1e-10)


def test_hog_similarity_is_the_pearson_correlation_of_hog_features(pair):
    from skimage.feature import hog

    a, b = pair
    ha = hog(a / np.abs(a).max(), pixels_per_cell=(16, 16), cells_per_block=(3, 3))
    hb = hog(b / np.abs(b).max(), pixels_per_cell=(16, 16), cells_per_block=(3, 3))
    assert SIMILARITIES["hog_pearson"](a, b) == pytest.approx(stats.pearsonr(ha, hb)[0], rel=1e-10)


def test_notebook_variants(pair):
    """The authors' notebook: min-max [0, 1] maps, Gaussian-window SSIM with data range 2, Spearman of HOG."""
    from skimage.feature import hog
    from skimage.metrics import structural_similarity

    a, b = pair
    mm = [(m - m.min()) / (m.max() - m.min()) for m in (a, b)]
    expected = structural_similarity(*mm, gaussian_weights=True, sigma=1.5, use_sample_covariance=True,
                                     data_range=2.0)
    assert SIMILARITIES["ssim_notebook"](a, b) == pytest.approx(expected, rel=1e-10)
    ha, hb = (hog(m, pixels_per_cell=(16, 16), cells_per_block=(3, 3)) for m in mm)
    assert SIMILARITIES["hog_spearman"](a, b) == pytest.approx(stats.spearmanr(ha, hb)[0], rel=1e-10)


def test_default_measures_and_unknown_names(pair):
    a, b = pair
    assert set(similarities(a, b)) == {"spearman_abs", "spearman", "pearson", "cosine", "ssim", "hog_pearson"}
    assert similarities(a, a)["ssim"] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="unknown similarity"):
        similarities(a, b, ["ssim", "emd"])
