import math
import warnings

import pytest
import torch

from attrdist import refine as var
from attrdist.var import PRESETS, ClassAgnosticWarning, VARConfig, get_preset


def literal_var(maps, temperatures, tau, magnitude, convention):
    """Per-pixel loop of the formula, in plain Python floats."""
    b, k, h, w = maps.shape
    out = torch.zeros(b, k, h, w, dtype=torch.float64)
    qs = torch.zeros(b, k, h, w, dtype=torch.float64)
    for i in range(b):
        for y in range(h):
            for x in range(w):
                vals = [float(maps[i, c, y, x]) for c in range(k)]
                if magnitude == "abs":
                    vals = [abs(v) for v in vals]
                q = [0.0] * k
                for t in temperatures:
                    z = [v / t if convention == "divide" else v * t for v in vals]
                    mx = max(z)
                    e = [math.exp(v - mx) for v in z]
                    s = sum(e)
                    for c in range(k):
                        q[c] += e[c] / s / len(temperatures)
                for c in range(k):
                    qs[i, c, y, x] = q[c]
                    keep = q[c] - 1.0 / k > tau
                    out[i, c, y, x] = float(maps[i, c, y, x]) * q[c] * keep
    return out, qs


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("preset", ["paper", "authors-code"])
def test_matches_literal_loop(seed, preset):
    gen = torch.Generator().manual_seed(seed)
    maps = torch.randn(2, 4, 5, 6, generator=gen, dtype=torch.float64) * 3
    cfg = PRESETS[preset]
    ref, qref = literal_var(maps, cfg.temperatures, cfg.tau, cfg.magnitude, cfg.convention)
    out = var(maps, preset=preset)
    torch.testing.assert_close(out.q, qref, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(out.refined, ref, rtol=1e-12, atol=1e-12)


def test_authors_code_operator_formula():
    """The operator under the authors' preset on given maps: softmax(10 |H|), tau 0.1 (0.01 for ranked sets)."""
    cfg = get_preset("authors-code")
    assert (cfg.temperatures, cfg.tau, cfg.tau_ranked, cfg.magnitude, cfg.convention, cfg.channels) == (
        (10.0,), 0.1, 0.01, "abs", "multiply", "each")
    maps = torch.randn(1, 3, 4, 4, dtype=torch.float64)
    q = torch.softmax(10 * maps.abs(), dim=1)
    torch.testing.assert_close(var(maps, preset="authors-code").refined, maps * q * (q - 1 / 3 > 0.1))
    torch.testing.assert_close(var(maps, preset="authors-code", ranked=True).refined, maps * q * (q - 1 / 3 > 0.01))


def authors_wrapper_reference(model, x, classes, target, tau):
    """The VAR authors' wrappers (nilspwalter/var, src/attribution_wrapper.py), re-written from their behaviour:
    one Input x Gradient call per class (Captum's per-channel [1, 3, H, W] map), the maps stacked over the
    classes, softmax(10 * |S|) over the class axis per pixel and channel, keep where M_t - 1/K > tau, the
    target's signed map times M_t; the channels summed at the end (attrdist's channel-summed contract)."""
    per_class = []
    for c in classes:
        xi = x.clone().requires_grad_(True)
        (g,) = torch.autograd.grad(model(xi)[0, c], xi)
        per_class.append((g * xi).detach()[0])  # [3, H, W]
    stacked = torch.stack(per_class)  # [K, 3, H, W]
    m = torch.softmax(10 * stacked.abs(), dim=0)
    t = classes.index(target)
    out = stacked[t] * m[t] * ((m[t] - 1 / len(classes)) > tau)
    return out.sum(0)


def test_authors_code_preset_reproduces_the_authors_wrappers(tiny_cnn):
    model = tiny_cnn.double()
    with torch.no_grad():
        model[-1].weight.mul_(3e3)  # maps of magnitude ~0.1-1, where softmax(10 |H|) is far from uniform
    x = torch.randn(1, 3, 16, 16, generator=torch.Generator().manual_seed(11), dtype=torch.float64)
    method = get_method("input_x_gradient", model)
    fixed = VAR(method, classes=[2, 5, 7], preset="authors-code").attribute(x, target=5)  # predefined: tau 0.1
    torch.testing.assert_close(fixed.refined_target[0], authors_wrapper_reference(model, x, [2, 5, 7], 5, 0.1))
    ranked = VAR(method, classes="top2+worst", preset="authors-code").attribute(x)  # top-k: tau 0.01
    cls = ranked.classes[0].tolist()
    torch.testing.assert_close(ranked.refined_target[0], authors_wrapper_reference(model, x, cls, cls[0], 0.01))
    assert fixed.refined_target.count_nonzero() > 20 and ranked.refined_target.count_nonzero() > 20
    summed = ranked.refine(channels="sum")  # the paper's channel-summed distribution differs
    assert not torch.allclose(summed.refined_target, ranked.refined_target)


def test_paper_preset_formula():
    maps = torch.randn(2, 4, 3, 3, dtype=torch.float64)
    q = sum(torch.softmax(maps / t, dim=1) for t in (1, 5, 100)) / 3
    torch.testing.assert_close(var(maps, preset="paper").refined, maps * q * (q > 0.25))


def test_default_preset_is_the_second_studys_winner():
    """The winner of the second variant study (benchmarks/results/variant-study-2/study.json), as literal loops."""
    import json
    from pathlib import Path

    from attrdist.bench.study import CANDIDATES
    from attrdist.var import DEFAULT_PRESET, PRESETS, variant_config

    study = json.loads((Path(__file__).resolve().parents[1] / "benchmarks" / "results" / "variant-study-2"
                        / "study.json").read_text())
    assert study["default"]["eligible"]
    assert PRESETS[DEFAULT_PRESET] == variant_config(CANDIDATES[study["default"]["chosen"]])
    maps = torch.randn(2, 3, 9, 8, generator=torch.Generator().manual_seed(6), dtype=torch.float64) * 1e-3
    ref = _literal_candidate(maps, magnitude="positive", smooth=0.02, power=1.0, gate="margin", tau_quantile=None,
                             min_keep=0.05, temperatures=(0.1, 0.3, 1.0))
    torch.testing.assert_close(var(maps).refined, ref, rtol=1e-10, atol=1e-12)


def test_normalized_preset_is_paper_on_jointly_scaled_maps():
    maps = torch.randn(2, 4, 5, 5, dtype=torch.float64) * 1e-6
    scale = maps.abs().flatten(1).quantile(0.99, dim=1, interpolation="nearest").view(-1, 1, 1, 1)
    h = maps / scale
    q = sum(torch.softmax(h / t, dim=1) for t in (1, 5, 100)) / 3
    out = var(maps, preset="normalized")
    torch.testing.assert_close(out.q, q)
    torch.testing.assert_close(out.refined, maps * q * (q > 0.25))


def test_overrides_and_q_is_distribution():
    maps = torch.randn(3, 5, 4, 4)
    out = var(maps, temperatures=(2.0,), tau=0.05, magnitude="abs")
    assert out.config.temperatures == (2.0,) and out.config.tau == 0.05
    torch.testing.assert_close(out.q.sum(1), torch.ones(3, 4, 4, dtype=torch.float64))
    assert out.refined.dtype == maps.dtype and out.refined.shape == maps.shape


def test_stable_at_large_magnitude():
    maps = torch.randn(2, 4, 8, 8) * 1e4
    out = var(maps, preset="paper")  # the paper's softmax of H / t at magnitude 1e4
    assert torch.isfinite(out.refined).all() and torch.isfinite(out.q).all()
    # the winning class keeps its pixels
    win = maps.argmax(1, keepdim=True)
    assert out.keep.gather(1, win).float().mean() > 0.99


def test_all_zero_maps_no_nan():
    out = var(torch.zeros(1, 3, 4, 4), warn_identical=False)
    assert torch.isfinite(out.refined).all()
    assert (out.refined == 0).all()
    torch.testing.assert_close(out.q, torch.full((1, 3, 4, 4), 1 / 3, dtype=torch.float64))


def test_tiny_magnitude_keeps_class_differences():
    # LRP-like relevances: float32 softmax would round to exactly 1/K everywhere
    gen = torch.Generator().manual_seed(0)
    maps = torch.randn(1, 4, 16, 16, generator=gen) * 1e-8
    out = var(maps)
    assert out.keep.any(1).float().mean() > 0.9


def exact_paper_keep(maps, temperatures=(1.0, 5.0, 100.0)):
    """Which pixels the paper's formula keeps, in 60-digit decimal arithmetic (no float rounding at all)."""
    from decimal import Decimal, localcontext

    b, k, h, w = maps.shape
    keep = torch.zeros(b, k, h, w, dtype=torch.bool)
    with localcontext() as ctx:
        ctx.prec = 60
        for i in range(b):
            for y in range(h):
                for x in range(w):
                    vals = [Decimal(float(maps[i, c, y, x])) for c in range(k)]
                    q = [Decimal(0)] * k
                    for t in temperatures:
                        e = [(v / Decimal(t)).exp() for v in vals]
                        q = [qc + ec / sum(e) / len(temperatures) for qc, ec in zip(q, e, strict=True)]
                    for c in range(k):
                        keep[i, c, y, x] = q[c] - Decimal(1) / k > 0
    return keep


@pytest.mark.parametrize("scale", [1.0, 1e-11, 1e-15, 1e-30])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_paper_preset_keeps_what_exact_arithmetic_keeps_at_any_magnitude(scale, dtype):
    """No absolute tolerance: maps of magnitude 1e-11 or 1e-15 keep the pixels where their class dominates.

    (An absolute tolerance of 1e-12 on q - 1/K kept 47 of 81 pixels of such maps, and none at 1e-12.)
    """
    gen = torch.Generator().manual_seed(3)
    maps = (torch.randn(1, 4, 9, 9, generator=gen, dtype=torch.float64) * scale).to(dtype)
    out = var(maps, preset="paper")
    expected = exact_paper_keep(maps)
    assert expected.sum() > 100  # the class that dominates each pixel keeps it, plus runners-up above the mean
    assert torch.equal(out.keep, expected)


@pytest.mark.parametrize("scale", [1.0, 1e-15])
def test_only_ties_up_to_rounding_count_as_uniform(scale):
    """Identical maps, and maps that differ by float rounding only, keep no pixel; a difference beyond it keeps."""
    base = torch.randn(1, 1, 6, 6, generator=torch.Generator().manual_seed(4), dtype=torch.float64).abs() + 1
    same = base.expand(1, 3, 6, 6) * scale
    assert not var(same, preset="paper", warn_identical=False).keep.any()
    rounded = same.clone()
    rounded[:, 1] = torch.nextafter(rounded[:, 1], torch.tensor(math.inf, dtype=torch.float64))  # one ulp up
    assert not var(rounded, preset="paper", warn_identical=False).keep.any()
    apart = same.clone()
    apart[:, 1] *= 1 + 1e-9
    keep = var(apart, preset="paper", warn_identical=False).keep
    assert keep[:, 1].all() and not keep[:, 0].any() and not keep[:, 2].any()


@pytest.mark.parametrize("k", [0, 1])
def test_k_below_two_is_error(k):
    with pytest.raises(ValueError, match="at least 2 classes"):
        var(torch.randn(1, k, 4, 4))


def test_identical_maps_warn():
    m = torch.randn(2, 1, 4, 4).expand(2, 3, 4, 4)
    with pytest.warns(ClassAgnosticWarning, match="identical across classes"):
        var(m)


def test_distinct_maps_do_not_warn():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        var(torch.randn(2, 3, 4, 4))


def test_nan_is_error():
    m = torch.randn(1, 3, 4, 4)
    m[0, 1, 2, 2] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        var(m)


@pytest.mark.parametrize("bad", [dict(temperatures=()), dict(temperatures=(0,)), dict(magnitude="x"),
                                 dict(convention="x"), dict(normalize="x"), dict(tau=2.0)])
def test_bad_config(bad):
    with pytest.raises(ValueError):
        var(torch.randn(1, 3, 2, 2), **bad)


def test_unknown_preset():
    with pytest.raises(ValueError, match="unknown VAR preset"):
        var(torch.randn(1, 3, 2, 2), preset="nope")


def test_wrong_shape():
    with pytest.raises(ValueError, match="shape"):
        var(torch.randn(3, 4))


@pytest.mark.parametrize("normalize", ["max", "quantile"])
@pytest.mark.parametrize("scale", [1e-8, 3.0, 1e5])
def test_joint_normalisation_is_scale_invariant(normalize, scale):
    maps = torch.randn(2, 4, 6, 6, dtype=torch.float64)
    a = var(maps, normalize=normalize)
    b = var(maps * scale, normalize=normalize)
    torch.testing.assert_close(a.q, b.q)
    torch.testing.assert_close(b.refined, a.refined * scale)


@pytest.mark.parametrize("normalize", ["max", "quantile"])
def test_normalisation_is_none_at_unit_scale(normalize):
    maps = torch.randn(2, 4, 6, 6, dtype=torch.float64)
    maps = maps / maps.abs().amax(dim=(1, 2, 3), keepdim=True)  # joint max-abs scale is 1
    if normalize == "quantile":
        cfg = VARConfig(normalize="quantile", quantile=1.0)
        torch.testing.assert_close(var(maps, preset=cfg).refined, var(maps, preset="paper").refined)
    else:
        scaled = var(maps, preset="paper", normalize="max").refined
        torch.testing.assert_close(scaled, var(maps, preset="paper").refined)


def test_normalisation_is_joint_not_per_map():
    maps = torch.rand(1, 2, 4, 4, dtype=torch.float64) + 0.1
    maps[:, 1] *= 100  # one class dominates; per-map scaling would hide that
    out = var(maps, normalize="max")
    assert float(out.q[:, 1].mean()) > float(out.q[:, 0].mean()) + 0.1


# --- the VAR wrapper -------------------------------------------------------------------------------

from attrdist import VAR, get_method  # noqa: E402


def test_var_wrapper_returns_target_map(tiny_cnn):
    x = torch.randn(2, 3, 16, 16)
    res = VAR(get_method("gradcam", tiny_cnn), classes="top3+worst").attribute(x)
    pred = tiny_cnn(x).argmax(1)
    assert res.target.tolist() == pred.tolist()
    assert res.classes[:, 0].tolist() == pred.tolist() and res.target_index.tolist() == [0, 0]
    assert res.maps.shape == res.q.shape == res.refined.shape == (2, 4, 16, 16)
    torch.testing.assert_close(res.refined_target, res.refined[:, 0])
    torch.testing.assert_close(res.raw_target, res.maps[:, 0])
    torch.testing.assert_close(res.refined, var(res.maps).refined)
    again = res.refine("paper", tau=0.05)  # the same raw maps, other parameters, no model call
    torch.testing.assert_close(again.refined, var(res.maps, preset="paper", tau=0.05).refined)
    assert again.maps is res.maps and again.config.tau == 0.05


def test_var_wrapper_target_and_fixed_set(tiny_cnn):
    x = torch.randn(1, 3, 16, 16)
    res = VAR(get_method("gradient", tiny_cnn), classes="top2+worst").attribute(x, target=7)
    assert int(res.target) == 7 and res.classes[0, 0] == 7
    fixed = VAR(get_method("gradient", tiny_cnn), classes="2,5,7", preset="authors-code").attribute(x)
    logits = tiny_cnn(x)[0, [2, 5, 7]]
    assert int(fixed.target) == [2, 5, 7][int(logits.argmax())]
    assert fixed.config == PRESETS["authors-code"] and not fixed.ranked
    with pytest.raises(ValueError, match="not in (its|the) class set"):
        VAR(get_method("gradient", tiny_cnn), classes="2,5,7").attribute(x, target=1)


def test_var_wrapper_overrides(tiny_cnn):
    v = VAR(get_method("gradient", tiny_cnn), classes="best-vs-worst", tau=0.2, temperatures=[3])
    assert v.config.tau == 0.2 and v.config.temperatures == (3.0,)


def _literal_blur(img, sigma):
    """Gaussian blur of one 2-D list map by explicit double loops, reflect-101 borders, radius ceil(3 sigma)."""
    h, w = len(img), len(img[0])
    r = min(math.ceil(3 * sigma), h - 1, w - 1)
    g = [math.exp(-(i * i) / (2 * sigma * sigma)) for i in range(-r, r + 1)]
    g = [v / sum(g) for v in g]

    def refl(i, n):
        return -i if i < 0 else (2 * (n - 1) - i if i >= n else i)

    rows = [[sum(g[j + r] * img[y][refl(x + j, w)] for j in range(-r, r + 1)) for x in range(w)] for y in range(h)]
    return [[sum(g[j + r] * rows[refl(y + j, h)][x] for j in range(-r, r + 1)) for x in range(w)] for y in range(h)]


def _literal_candidate(maps, magnitude, smooth, power, gate, tau_quantile, min_keep=0.0,
                       temperatures=(1.0, 5.0, 100.0)):
    """The refinement candidates of the variant study from their definitions, one pixel at a time."""
    b, k, h, w = maps.shape
    out = [[[[0.0] * w for _ in range(h)] for _ in range(k)] for _ in range(b)]
    for i in range(b):
        flat = sorted(abs(float(v)) for v in maps[i].flatten())
        scale = flat[int(round(0.99 * (len(flat) - 1)))]  # the joint 99th percentile of |H| (normalized preset)
        hs = []
        for c in range(k):
            m = [[float(maps[i, c, y, x]) for x in range(w)] for y in range(h)]
            m = [[max(v, 0.0) if magnitude == "positive" else (abs(v) if magnitude == "abs" else v) for v in row]
                 for row in m]
            m = [[v / scale for v in row] for row in m]
            hs.append(_literal_blur(m, smooth * max(h, w)) if smooth else m)
        q = [[[0.0] * w for _ in range(h)] for _ in range(k)]
        for y in range(h):
            for x in range(w):
                for t in temperatures:
                    e = [math.exp(hs[c][y][x] / t) for c in range(k)]
                    for c in range(k):
                        q[c][y][x] += e[c] / sum(e) / len(temperatures)
        for c in range(k):
            excess = sorted(q[c][y][x] - 1 / k for y in range(h) for x in range(w))
            if tau_quantile is None:
                margin = 0.0
            else:  # linear interpolation between order statistics, as numpy's default quantile
                pos = tau_quantile * (len(excess) - 1)
                lo = int(math.floor(pos))
                margin = excess[lo] + (excess[min(lo + 1, len(excess) - 1)] - excess[lo]) * (pos - lo)
            positive = [(y, x) for y in range(h) for x in range(w) if maps[i, c, y, x] > 0]
            kept = sum(1 for y, x in positive if q[c][y][x] - 1 / k > margin)
            least = math.ceil(min_keep * h * w)
            extra = set()
            if kept < least:  # too few pixels with evidence pass: the `least` positive ones of highest q pass too
                extra = set(sorted(positive, key=lambda p: -q[c][p[0]][p[1]])[:least])
            for y in range(h):
                for x in range(w):
                    keep = gate == "none" or q[c][y][x] - 1 / k > margin or (y, x) in extra
                    out[i][c][y][x] = float(maps[i, c, y, x]) * q[c][y][x] ** power * keep
    return torch.tensor(out, dtype=torch.float64)


@pytest.mark.parametrize("fields", [
    dict(magnitude="positive"), dict(smooth=0.1), dict(smooth=0.2, magnitude="positive"), dict(power=2.0),
    dict(gate="none", power=3.0), dict(tau_quantile=0.5), dict(tau_quantile=0.8, smooth=0.1),
    dict(min_keep=0.3), dict(min_keep=0.05, magnitude="positive", smooth=0.1),
    dict(magnitude="abs", smooth=0.15, temperatures=(0.1, 0.3, 1.0), min_keep=0.05),
])
def test_study_candidates_match_literal_loops(fields):
    gen = torch.Generator().manual_seed(5)
    maps = torch.randn(2, 3, 9, 8, generator=gen, dtype=torch.float64)
    args = dict(magnitude="signed", smooth=0.0, power=1.0, gate="margin", tau_quantile=None, min_keep=0.0) | fields
    ref = _literal_candidate(maps, **args)
    if "temperatures" in fields:
        assert not torch.allclose(ref, _literal_candidate(maps, **(args | {"temperatures": (1.0, 5.0, 100.0)})))
    torch.testing.assert_close(var(maps, preset="normalized", **fields).refined, ref, rtol=1e-10, atol=1e-12)


def test_soft_gate_never_zeroes_a_map():
    maps = torch.zeros(1, 4, 6, 6, dtype=torch.float64)
    maps[0, :, 2, 2] = torch.tensor([1.0, 5.0, 5.0, 5.0])  # class 0 never dominates: zeroed under the margin
    assert not var(maps, preset="normalized").refined[0, 0].any()
    assert var(maps, preset="normalized", gate="none").refined[0, 0].any()
    weak = torch.randn(1, 4, 10, 10, generator=torch.Generator().manual_seed(0), dtype=torch.float64).abs()
    weak[0, 1:] += 2
    weak[0, 0] *= 0.1  # class 0 loses every pixel: the margin zeroes it, a quantile margin keeps its best tenth
    assert not var(weak, preset="normalized").keep[0, 0].any()
    assert var(weak, preset="normalized", tau_quantile=0.9).keep[0, 0].sum() == 10
    assert var(weak, preset="normalized", min_keep=0.05).keep[0, 0].sum() == 5  # the least share it keeps
    kept_by_others = var(weak, preset="normalized").keep[0, 1:].sum()
    assert var(weak, preset="normalized", min_keep=0.05).keep[0, 1:].sum() == kept_by_others


def test_min_keep_keeps_evidence_not_zeros():
    # a Grad-CAM-like map: class 0 is zero except a small blob where the other classes are stronger; its
    # highest q is where every class is zero (q = 1/K, no evidence): min_keep must keep the blob instead
    maps = torch.zeros(1, 4, 10, 10, dtype=torch.float64)
    maps[0, 0, 2:4, 2:4] = 1.0
    maps[0, 1:, 2:4, 2:4] = 3.0
    maps[0, 1:, 6:, 6:] = 2.0
    assert not var(maps, preset="normalized").refined[0, 0].any()
    out = var(maps, preset="normalized", min_keep=0.04)
    assert (out.refined[0, 0] > 0).sum() == 4 and out.refined[0, 0, 2:4, 2:4].gt(0).all()
    assert not var(-maps, preset="normalized", min_keep=0.04).refined[0, 0].gt(0).any()  # nothing positive to keep


@pytest.mark.parametrize("bad", [dict(smooth=-0.1), dict(smooth=2.0), dict(power=0.0), dict(tau_quantile=1.0),
                                 dict(gate="soft"), dict(min_keep=1.5)])
def test_bad_candidate_fields(bad):
    with pytest.raises(ValueError):
        var(torch.randn(1, 3, 2, 2), **bad)


def test_smoothed_preset_is_the_study_candidate():
    # the named preset is the study's best localiser, field for field (docs/presets.md, "The variant study")
    from attrdist.bench.study import CANDIDATES

    fields = dict(CANDIDATES["n+abs+smooth.02+t.1-.3-1+keep.05"])
    base = fields.pop("preset")
    assert get_preset("smoothed") == get_preset(base, **{k: tuple(v) if isinstance(v, list) else v
                                                         for k, v in fields.items()})
    gen = torch.Generator().manual_seed(2)
    maps = torch.randn(1, 4, 12, 10, generator=gen, dtype=torch.float64)
    ref = _literal_candidate(maps, "abs", 0.02, 1.0, "margin", None, 0.05, (0.1, 0.3, 1.0))
    torch.testing.assert_close(var(maps, preset="smoothed").refined, ref, rtol=1e-10, atol=1e-12)


def _smooth_fields(scale, seed=0):
    """Float32 maps like real ones: smooth random fields of 4 classes on 224x224, a zero (ReLU'd) band."""
    from attrdist.smoothing import smooth

    raw = torch.randn(2, 4, 224, 224, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    maps = (smooth(raw, 31, 5.0) * scale).float()
    maps[:, :, :40] = 0
    return maps


@pytest.mark.parametrize("scale", [1e-2, 1.0, 1e2])
@pytest.mark.parametrize("preset", list(PRESETS))
def test_float32_path_agrees_with_float64(preset, scale):
    """Float32 maps of O(1) scale are refined in float32, smoothed or not: the same kept pixels and maps as in
    float64."""
    from attrdist.var import joint_scale, working_dtype

    maps = _smooth_fields(scale)
    cfg = PRESETS[preset]
    assert working_dtype(maps, cfg, joint_scale(maps, cfg.normalize, cfg.quantile)) == torch.float32
    fast, exact = var(maps, cfg), var(maps.double(), cfg)
    assert fast.q.dtype == torch.float64 and fast.refined.dtype == torch.float32
    assert torch.equal(fast.keep, exact.keep)
    torch.testing.assert_close(fast.q, exact.q, rtol=0, atol=1e-5)
    torch.testing.assert_close(fast.refined.double(), exact.refined, rtol=1e-5, atol=1e-6 * scale)


@pytest.mark.parametrize("scale, normalize, dtype", [
    (1e-9, "none", torch.float64),  # tiny LRP relevances under the paper preset: float64
    (1e6, "none", torch.float64),
    (1.0, "none", torch.float32),
    (1e-9, "quantile", torch.float32),  # a joint normalisation makes any scale O(1)
])
def test_working_dtype_is_decided_per_call(scale, normalize, dtype):
    from attrdist.var import joint_scale, working_dtype

    maps = _smooth_fields(scale)
    cfg = get_preset("paper", normalize=normalize)
    assert working_dtype(maps, cfg, joint_scale(maps, normalize)) == dtype
    assert working_dtype(maps.double(), cfg, joint_scale(maps, normalize)) == torch.float64
    assert working_dtype(maps, get_preset("normalized", tau_quantile=0.5), joint_scale(maps, normalize)) == \
        torch.float64
    assert working_dtype(maps, get_preset("normalized", smooth=0.02), joint_scale(maps, normalize)) == torch.float32


@pytest.mark.parametrize("kind", ["noise", "constant", "every-17th", "sparse", "small"])
@pytest.mark.parametrize("quantile", [0.99, 0.9, 0.5, 1.0])
def test_joint_quantile_is_the_exact_order_statistic(kind, quantile):
    # the joint scale is the k-th smallest |H| of each image, k = round(quantile (n - 1)) + 1, whatever shortcut
    # finds it (a bound from a sample, which a periodic map defeats, falls back to a full search)
    import numpy as np

    from attrdist.var import joint_scale

    gen = torch.Generator().manual_seed(3)
    shape = (3, 4, 7, 7) if kind == "small" else (3, 4, 112, 112)
    maps = torch.randn(*shape, generator=gen)
    if kind == "constant":
        maps = torch.full(shape, -0.5)
    elif kind == "every-17th":
        maps = (torch.arange(maps[0].numel()) % 17 == 0).float().view(shape[1:]).expand(shape) * torch.rand(
            3, 1, 1, 1, generator=gen)
    elif kind == "sparse":
        maps = maps * (torch.rand(*shape, generator=gen) > 0.995)
    got = joint_scale(maps, "quantile", quantile)
    for b in range(shape[0]):
        values = np.sort(np.abs(maps[b].numpy()).ravel())
        k = int(round(quantile * (values.size - 1)))  # 0-based: the k-th smallest
        expected = values[k] if values[k] > 0 else values[-1] if values[-1] > 0 else 1.0
        assert float(got[b]) == float(expected), (b, float(got[b]), float(expected))


def test_expm1_floor_changes_no_value_and_float32_expm1_is_exact():
    # below EXPM1_FLOOR, expm1 is -1 exactly (so the clamp changes nothing); float32 values within an ulp
    from attrdist.var import EXPM1_FLOOR, _expm1

    below = torch.tensor([EXPM1_FLOOR, EXPM1_FLOOR - 1e-3, -50.0, -1000.0, -1e30], dtype=torch.float64)
    assert torch.equal(torch.expm1(below), torch.full_like(below, -1.0))
    assert torch.equal(torch.expm1(below.float()), torch.full_like(below.float(), -1.0))
    z = -torch.logspace(-12, 1.6, 4001, dtype=torch.float64)
    exact = torch.expm1(z)
    got = _expm1(z.float()).double()
    ulp = torch.finfo(torch.float32).eps * exact.abs()
    assert bool(((got - exact).abs() <= ulp).all())
