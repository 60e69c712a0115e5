"""PIC against the PyPI `saliency` package (the reference implementation), and RISE."""

import numpy as np
import pytest
import torch
from scipy import interpolate
from scipy.ndimage import gaussian_filter
from scipy.spatial import Delaunay
from threadpoolctl import threadpool_limits

from attrdist.metrics.insertion import (
    PIC_THRESHOLDS,
    PicBase,
    PicSkip,
    aggregate_curves,
    blur_from_mask,
    pic_curves,
    pic_curves_many,
    random_mask,
)
from attrdist.metrics.rise import rise_curves


def one_blas_thread():
    """For the reference's calls: the same numbers, without OpenBLAS's threads on every triangle (slow)."""
    return threadpool_limits(limits=1, user_api="blas")


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
        x = pre.normalize(torch.from_numpy(np.array(batch)).permute(0, 3, 1, 2).float().div(255.0))  # a writable copy
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


@pytest.mark.parametrize("seed", range(8))
def test_interpolation_is_griddata_linear(seed):
    """The rasterised interpolation against scipy's linear griddata (the reference's), unrounded: a float
    image in [0, 1], small images (griddata is fast on them), sparse to dense masks, grey and colour."""
    rng = np.random.default_rng(seed)
    h, w = rng.integers(5, 40, size=2)
    density = [0.02, 0.1, 0.3, 0.6, 0.9][seed % 5]
    keep = rng.random((h, w)) < density
    img = rng.random((h, w, 3))
    full = keep.copy()
    full[[0, 0, h - 1, h - 1], [0, w - 1, 0, w - 1]] = True
    if full.all():
        full[h // 2, w // 2] = keep[h // 2, w // 2] = False
    expected = img.astype(np.float32) * full[..., None]
    for ch in range(3):
        expected[~full, ch] = interpolate.griddata(np.argwhere(full), img[full, ch], np.argwhere(~full),
                                                   method="linear")
    np.testing.assert_allclose(blur_from_mask(img, keep), expected, atol=1e-6, rtol=0)
    np.testing.assert_allclose(blur_from_mask(img[..., 1], keep), expected[..., 1], atol=1e-6, rtol=0)


def test_reconstruction_never_locates_points_in_scipy(monkeypatch):
    """No per-point simplex search, no per-triangle LAPACK transforms (with OpenBLAS threads those took 12 s for
    one 224x224 1% mask on a busy 2-core CPU): the triangles are rasterised."""
    used = []

    class Spy(Delaunay):
        @property
        def transform(self):
            used.append("transform")
            return super().transform

        def find_simplex(self, *args, **kwargs):
            used.append("find_simplex")
            return super().find_simplex(*args, **kwargs)

    monkeypatch.setattr("scipy.spatial.Delaunay", Spy)  # imported where it is used
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (24, 32, 3), dtype=np.uint8)
    out = blur_from_mask(img, random_mask(24, 32, 0.05, seed=1))
    assert used == [] and out.shape == img.shape


def toy_predict(batch):
    """Two classes: the first the more probable the more detail (the original beats any reconstruction)."""
    detail = np.abs(np.diff(batch.astype(float), axis=2)).mean(axis=(1, 2, 3)) / 255.0
    p = 0.05 + 0.9 * np.tanh(20 * detail)
    return np.stack([p, 1 - p], axis=1)


class Counting:
    """A prediction function that records its batch sizes."""

    def __init__(self, fn):
        self.fn, self.calls = fn, []

    def __call__(self, batch):
        self.calls.append(len(batch))
        return self.fn(batch)


def toy_image(seed=0):
    rng = np.random.default_rng(seed)
    return (gaussian_filter(rng.random((32, 40, 3)), (1, 1, 0)) * 255).astype(np.uint8)


def test_images_already_seen_for_the_image_are_not_rendered_again():
    img = toy_image()
    mask = random_mask(32, 40, 0.05, seed=2)
    sal = np.random.default_rng(3).random((32, 40))
    fresh = pic_curves(PicBase.of(img, mask, toy_predict), sal, toy_predict, min_pred=0.0)
    model = Counting(toy_predict)
    base = PicBase.of(img, mask, model)
    first = pic_curves(base, sal, model, min_pred=0.0)
    again = pic_curves(base, 3 * sal + 1, model, min_pred=0.0)  # the same pixel order: nothing new
    assert model.calls == [2, len(PIC_THRESHOLDS)]
    for kind in ("sic", "aic"):
        np.testing.assert_array_equal(first[kind].y, fresh[kind].y)
        np.testing.assert_array_equal(again[kind].y, first[kind].y)


def test_a_threshold_that_keeps_every_pixel_reuses_the_original():
    """A sparse map: from the threshold that reaches its zeros on, every pixel is kept, the original image."""
    img = toy_image(1)
    mask = random_mask(32, 40, 0.05, seed=2)
    sal = np.zeros((32, 40))
    sal[:8, :10] = np.random.default_rng(4).random((8, 10))  # 80 of 1280 pixels: 6.25%
    model = Counting(toy_predict)
    base = PicBase.of(img, mask, model)
    res = pic_curves(base, sal, model, min_pred=0.0)
    assert model.calls == [2, sum(t < 0.0625 for t in PIC_THRESHOLDS)]  # 0.07 and above keep every pixel
    ref_base = PicBase.of(img, mask, toy_predict)
    ref_base.seen.clear()  # nothing known: every threshold's image rendered and predicted
    ref = pic_curves(ref_base, sal, toy_predict, min_pred=0.0)
    for kind in ("sic", "aic"):
        np.testing.assert_array_equal(res[kind].y, ref[kind].y)


def test_many_maps_batch_the_model_and_match_one_at_a_time():
    img = toy_image(2)
    mask = random_mask(32, 40, 0.05, seed=2)
    rng = np.random.default_rng(5)
    maps = [rng.random((32, 40)) for _ in range(3)]
    singles = [pic_curves(PicBase.of(img, mask, toy_predict), m, toy_predict, min_pred=0.0) for m in maps]
    model = Counting(toy_predict)
    base = PicBase.of(img, mask, model)
    for workers in (1, 2):
        base.seen.clear()
        base.__post_init__()  # back to the original's and the fully blurred image's
        model.calls.clear()
        many = pic_curves_many(base, maps, model, min_pred=0.0, batch=16, workers=workers)
        assert model.calls == [16, 16, 7]  # 3 x 13 distinct images
        for one, res in zip(singles, many, strict=True):
            for kind in ("sic", "aic"):
                np.testing.assert_array_equal(res[kind].y, one[kind].y)
    with pytest.raises(ValueError, match="saliency"):
        pic_curves_many(base, [maps[0], maps[0][:10]], model)


def saliency_map(kind, shape):
    """Test maps: ``ramp`` (noise, right side first), ``smooth`` (like a CAM: solid kept regions, qhull's most
    degenerate input) and ``sparse`` (zero but for a corner: from 0.07 on, a threshold keeps every pixel)."""
    noise = np.random.default_rng(1).random(shape)
    if kind == "ramp":
        return noise + np.linspace(0, 1, shape[1])[None, :]
    if kind == "smooth":
        return gaussian_filter(noise, 12)
    out = np.zeros(shape)
    out[:56, :56] = noise[:56, :56]  # 6.25% of the pixels
    return out


@pytest.mark.slow  # 5-16 s each: CI runs it, the fast subset leaves it out
@pytest.mark.parametrize(("name", "kind"), [("coffee", "ramp"), ("chelsea", "ramp"), ("coffee", "smooth"),
                                            ("coffee", "sparse")])
def test_sic_and_aic_match_reference(pic, setup, name, kind):
    probs, images = setup
    img = images[name]
    top = int(probs(img[None])[0].argmax())
    saliency = saliency_map(kind, img.shape[:2])
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
