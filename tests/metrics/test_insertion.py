"""PIC against the PyPI `saliency` package (the reference implementation), and RISE."""

import numpy as np
import pytest
import torch
from scipy import interpolate
from scipy.spatial import Delaunay
from threadpoolctl import threadpool_info, threadpool_limits

from attrdist.metrics.insertion import (
    PIC_THRESHOLDS,
    PicBase,
    PicSkip,
    aggregate_curves,
    blur_from_mask,
    pic_curves,
    random_mask,
    rise_curves,
)


def one_blas_thread():
    """For the reference's calls: the same numbers, without OpenBLAS's threads on every triangle (slow)."""
    return threadpool_limits(limits=1, user_api="blas")


def blas_threads():
    """The most threads a loaded BLAS runs (0 when threadpoolctl sees none: the test below is then skipped)."""
    return max((lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"), default=0)


@pytest.fixture(scope="module")
def pic():
    mod = pytest.importorskip("saliency.metrics.pic")
    if not hasattr(np, "trapz"):  # the package calls np.trapz, which NumPy 2.4 removed
        np.trapz = np.trapezoid
    return mod


@pytest.fixture(scope="module")
def setup(lite0):
    from attrdist.data import sample_image

    pre = lite0.preprocess

    def probs(batch):
        x = pre.normalize(torch.from_numpy(batch).permute(0, 3, 1, 2).float().div(255.0))
        with torch.no_grad():
            return lite0.model(x).softmax(1).double().numpy()

    images = {n: np.asarray(pre.crop_image(sample_image(n)), dtype=np.uint8) for n in ("coffee", "chelsea")}
    return probs, images


def test_blur_matches_reference(pic):
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (40, 50, 3), dtype=np.uint8)
    keep = rng.random((40, 50)) < 0.1
    np.testing.assert_array_equal(blur_from_mask(img, keep), pic.create_blurred_image(img, keep))
    grey = img[..., 0]
    np.testing.assert_array_equal(blur_from_mask(grey, keep), pic.create_blurred_image(grey, keep))


def test_blur_on_triangle_edges_is_griddata_bit_for_bit():
    """Lattice points on triangle edges, several exactly halfway between two grey levels (x.5, rounded half
    to even): the values of scipy's linear griddata (the reference), literally. Querying at the pixels moved
    by 1e-6 instead rounds (0, 3), (1, 1) and (3, 1) up and takes the border pixels out of the hull."""
    img = np.array([[10, 0, 13, 0, 20],
                    [0, 0, 0, 0, 0],
                    [0, 0, 11, 0, 0],
                    [0, 0, 0, 0, 0],
                    [30, 0, 0, 0, 41]], dtype=np.uint8)
    keep = img > 0
    lin = interpolate.griddata(np.argwhere(keep), img[keep].astype(float), np.argwhere(~keep), method="linear")
    np.testing.assert_array_equal(lin, [11.5, 16.5, 15, 10.5, 12, 15.5, 25.25, 20, 15.5, 20.75, 30.5, 25, 20.5,
                                        23.25, 26, 35.75, 32.75, 35.5, 38.25])
    expected = np.array([[10, 12, 13, 16, 20],
                         [15, 10, 12, 16, 25],
                         [20, 16, 11, 21, 30],
                         [25, 20, 23, 26, 36],
                         [30, 33, 36, 38, 41]], dtype=np.uint8)
    np.testing.assert_array_equal(blur_from_mask(img, keep), expected)
    doubled = 2 * img.astype(np.float32)  # one triangulation, three channels: 2 * 25.25 -> 50, 2 * 20.75 -> 42
    doubled[~keep] = 2 * lin
    rgb = np.stack([img, 2 * img, img], axis=-1)
    np.testing.assert_array_equal(blur_from_mask(rgb, keep),
                                  np.stack([expected, np.round(doubled).astype(np.uint8), expected], axis=-1))


def test_blur_matches_reference_on_a_photo(pic, setup):
    _, images = setup
    img = images["coffee"]
    mask = random_mask(*img.shape[:2], seed=0)
    keep = mask | (np.random.default_rng(2).random(img.shape[:2]) < 0.2)
    for k in (mask, keep):
        with one_blas_thread():
            ref = pic.create_blurred_image(img, k)
        np.testing.assert_array_equal(blur_from_mask(img, k), ref)


def test_triangle_transforms_take_one_blas_thread(monkeypatch):
    """scipy computes a triangulation's barycentric transforms with one LAPACK call per triangle; with
    several OpenBLAS threads that took seconds per image (12 s for a 1% mask on a busy 2-core CPU)."""
    seen = []

    class Spy(Delaunay):
        @property
        def transform(self):
            seen.append(blas_threads())
            return super().transform

    monkeypatch.setattr("scipy.spatial.Delaunay", Spy)  # imported where it is used
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (24, 32, 3), dtype=np.uint8)
    mask = random_mask(24, 32, 0.05, seed=1)
    scores = lambda b: np.tile([0.9, 0.1], (len(b), 1))  # noqa: E731
    with threadpool_limits(limits=2, user_api="blas"):
        if blas_threads() < 2:
            pytest.skip("BLAS runs a single thread here (or threadpoolctl sees no BLAS library)")
        blur_from_mask(img, mask)
        pic_curves(PicBase.of(img, mask, scores), rng.random((24, 32)), scores, thresholds=(0.05, 0.5))
        assert blas_threads() == 2  # restored
    assert len(seen) >= 4 and set(seen) == {1}


@pytest.mark.slow  # 5-16 s: CI runs it, the fast subset leaves it out
@pytest.mark.parametrize("name", ["coffee", "chelsea"])
def test_sic_and_aic_match_reference(pic, setup, name):
    probs, images = setup
    img = images[name]
    top = int(probs(img[None])[0].argmax())
    gen = np.random.default_rng(1)
    saliency = gen.random(img.shape[:2]) + np.linspace(0, 1, img.shape[1])[None, :]  # right side first
    mask = random_mask(*img.shape[:2], 0.01, seed=3)
    ours = pic_curves(PicBase.of(img, mask, probs), saliency, probs, PIC_THRESHOLDS, min_pred=0.8)
    sic_fn = lambda b: probs(b)[:, top]  # noqa: E731
    aic_fn = lambda b: (probs(b).argmax(1) == top).astype(float)  # noqa: E731
    for kind, fn, min_pred in (("sic", sic_fn, 0.8), ("aic", aic_fn, 0.0)):
        try:
            with one_blas_thread():
                ref = pic.compute_pic_metric(img, saliency, mask, fn, PIC_THRESHOLDS, min_pred_value=min_pred)
        except pic.ComputePicMetricError as err:
            assert isinstance(ours[kind], PicSkip), f"reference skipped ({err}), attrdist did not"
            continue
        assert not isinstance(ours[kind], PicSkip), ours[kind]
        np.testing.assert_allclose(ours[kind].y, ref.curve_y, atol=1e-6)
        assert ours[kind].auc == pytest.approx(ref.auc, abs=1e-6)


def test_skip_reasons_match_reference(pic, setup):
    probs, images = setup
    img = images["chelsea"]  # the cat is below 0.8 confidence: SIC skips it
    top = int(probs(img[None])[0].argmax())
    mask = random_mask(*img.shape[:2], seed=0)
    sal = np.random.default_rng(0).random(img.shape[:2])
    with pytest.raises(pic.ComputePicMetricError, match="lower than"), one_blas_thread():
        pic.compute_pic_metric(img, sal, mask, lambda b: probs(b)[:, top], PIC_THRESHOLDS, min_pred_value=0.8)
    res = pic_curves(PicBase.of(img, mask, probs), sal, probs)
    assert isinstance(res["sic"], PicSkip) and "min_pred" in res["sic"].reason
    # a blank image has no less information once blurred: skipped for both
    flat = np.full_like(img, 128)
    with pytest.raises(pic.ComputePicMetricError, match="entropy"), one_blas_thread():
        pic.compute_pic_metric(flat, sal, mask, lambda b: np.ones(len(b)), PIC_THRESHOLDS, min_pred_value=0.0)
    res = pic_curves(PicBase.of(flat, mask, probs), sal, probs, min_pred=0.0)
    assert "information" in res["aic"].reason


def test_thresholds_go_through_the_model_in_one_batch(setup):
    probs, images = setup
    calls = []

    def counting(b):
        calls.append(len(b))
        return probs(b)

    img = images["coffee"]
    base = PicBase.of(img, random_mask(*img.shape[:2]), counting)
    pic_curves(base, np.random.default_rng(0).random(img.shape[:2]), counting)
    assert calls == [2, len(PIC_THRESHOLDS)]


def test_aggregate_and_random_mask():
    m = random_mask(10, 20, 0.1, seed=5)
    assert m.sum() == 20 and np.array_equal(m, random_mask(10, 20, 0.1, seed=5))
    from attrdist.metrics.insertion import PicCurve

    x = np.linspace(0, 1, 5)
    curves = [PicCurve(x, np.array(y, float), 0.0) for y in ([0, .2, .4, .6, 1], [0, .4, .6, .8, 1], [0, 0, 0, 0, 1])]
    agg = aggregate_curves(curves)
    np.testing.assert_allclose(agg.y, [0, .2, .4, .6, 1])
    assert aggregate_curves(curves, "mean").y[1] == pytest.approx(0.2)


def test_rise_auc_bounds(tiny_cnn):
    x = torch.randn(1, 3, 16, 16)
    out = rise_curves(tiny_cnn, x, torch.rand(16, 16), target=1, step=16, batch=5)
    assert set(out) == {"insertion", "deletion"} and all(0 <= v <= 1 for v in out.values())
