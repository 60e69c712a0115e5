"""Contract tests over every registered method: batched == per sample, K at once == one class at a time,
batched VJPs == sequential VJPs, raw output shape and dtype."""

import pytest
import torch

from attrdist import get_method, list_methods
from attrdist.methods.gradient import SmoothGrad

FAST = {"integrated_gradients": dict(steps=4, chunk_size=3), "smoothgrad": dict(samples=4, chunk_size=3)}


@pytest.fixture(scope="module")
def model(tv_model):
    return tv_model("resnet18")


@pytest.fixture(scope="module")
def batch():
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(3, 3, 48, 48, generator=gen, dtype=torch.float64)
    classes = torch.tensor([[1, 5, 9, 2], [0, 3, 4, 8], [7, 6, 2, 999]])
    return x, classes


def close(a, b):
    torch.testing.assert_close(a, b, rtol=1e-7, atol=1e-9 * float(b.abs().max()))


@pytest.mark.parametrize("name", list_methods("cnn"))
def test_shape_and_raw(name, model, batch):
    x, classes = batch
    att = get_method(name, model, **FAST.get(name, {})).attribute(x, classes=classes)
    assert att.maps.shape == (3, 4, 48, 48)
    assert att.maps.dtype == torch.float64
    assert att.classes.tolist() == classes.tolist()
    assert att.logits.shape == (3, 1000)
    assert torch.isfinite(att.maps).all()
    # maps are not normalised per map: different classes have different scales
    scales = att.maps.flatten(2).abs().amax(-1)
    assert not torch.allclose(scales, torch.ones_like(scales))


@pytest.mark.parametrize("name", list_methods("cnn"))
def test_batch_equals_samples(name, model, batch):
    x, classes = batch
    method = get_method(name, model, **FAST.get(name, {}))
    whole = method(x, classes)
    for i in range(x.shape[0]):
        close(whole[i : i + 1], method(x[i : i + 1], classes[i : i + 1]))


@pytest.mark.parametrize("name", list_methods("cnn"))
def test_k_at_once_equals_one_at_a_time(name, model, batch):
    x, classes = batch
    method = get_method(name, model, **FAST.get(name, {}))
    whole = method(x, classes)
    for k in range(classes.shape[1]):
        close(whole[:, k : k + 1], method(x, classes[:, k : k + 1]))


@pytest.mark.parametrize("name", list_methods("cnn"))
def test_vjp_modes_agree(name, model, batch):
    x, classes = batch
    seq = get_method(name, model, vjp="sequential", **FAST.get(name, {})).attribute(x, classes=classes)
    bat = get_method(name, model, vjp="batched", **FAST.get(name, {})).attribute(x, classes=classes)
    assert seq.vjp == "sequential"
    close(bat.maps, seq.maps)


@pytest.mark.parametrize("name", list_methods("cnn"))
def test_class_set_spec_resolved_from_same_forward(name, model, batch):
    x, _ = batch
    att = get_method(name, model, **FAST.get(name, {})).attribute(x, classes="top2+worst")
    with torch.no_grad():
        logits = model(x)
    torch.testing.assert_close(att.logits, logits, rtol=1e-9, atol=1e-9)
    order = logits.argsort(1, descending=True)
    assert att.classes[:, :2].tolist() == order[:, :2].tolist()
    assert att.classes[:, 2].tolist() == order[:, -1].tolist()


def test_smoothgrad_is_mean_gradient_over_its_noise(model, batch):
    x, classes = batch
    sg = SmoothGrad(model, samples=3, noise_level=0.2, seed=7, chunk_size=2)
    pts, _ = sg._points(x, 0, sg._count)
    grad = get_method("gradient", model)
    ref = torch.stack([grad(p, classes) for p in pts]).mean(0)
    close(sg(x, classes), ref)
    close(sg(x, classes), SmoothGrad(model, samples=3, noise_level=0.2, seed=7)(x, classes))  # seeded


@pytest.mark.slow  # 5-16 s: CI runs it, the fast subset leaves it out
def test_integrated_gradients_completeness(model, batch):
    x, classes = batch
    ig = get_method("integrated_gradients", model, steps=64)
    att = ig.attribute(x, classes=classes)
    with torch.no_grad():
        diff = model(x).gather(1, classes) - model(torch.zeros_like(x)).gather(1, classes)
    torch.testing.assert_close(att.maps.sum((-2, -1)), diff, rtol=2e-2, atol=2e-2 * float(diff.abs().max()))


def test_channel_maps_and_native_resolution(model, batch):
    x, classes = batch
    att = get_method("input_x_gradient", model).attribute(x, classes=classes)
    assert att.channel_maps.shape == (3, 4, 3, 48, 48)
    torch.testing.assert_close(att.channel_maps.sum(2), att.maps, rtol=0, atol=0)
    assert get_method("gradcam", model).attribute(x, classes=classes).channel_maps is None
    assert get_method("gradcam", model, resolution="native")(x, classes).shape == (3, 4, 2, 2)


@pytest.mark.parametrize("name", ["gradient", "input_x_gradient", "gradcam", "lrp"])
def test_a_callers_no_grad_does_not_change_the_maps(name, model, batch):
    """Captum's NoiseTunnel and evaluation loops call under ``torch.no_grad()``: the method still gets gradients."""
    x, _ = batch
    method = get_method(name, model)
    expected = method.attribute(x, classes="top2")
    with torch.no_grad():
        got = method.attribute(x, classes="top2")
    close(got.maps, expected.maps)
