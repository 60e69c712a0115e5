"""Every built-in method against a peer library, in float64 (tolerances: rtol 1e-6, atol 1e-8 * max|ref|).

Each comparison runs with batched VJPs (one ``autograd.grad(..., is_grads_batched=True)`` over the K classes,
what production uses wherever it is faster) and with sequential VJPs, named explicitly: neither path is
left to what ``vjp="auto"`` happens to pick on this machine."""

import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from captum.attr import (
    GuidedBackprop,
    GuidedGradCam,
    InputXGradient,
    IntegratedGradients,
    LayerAttribution,
    LayerGradCam,
    Saliency,
)

from attrdist import get_method
from attrdist.methods.hooks import resolve_module
from attrdist.models import default_cam_layer, family_of

pytestmark = pytest.mark.slow  # end-to-end: `pytest -m "not slow"` leaves it out

MODELS = ["resnet18", "densenet121", "convnext_tiny", "lite0"]
VJP = ["batched", "sequential"]
GELU_MODELS = {"convnext_tiny"}  # Captum's guided backprop ignores GELU; attrdist clamps there too


class ReLU6AsReLU(torch.nn.ReLU):
    """ReLU6 seen by Captum as a ReLU (identical outputs), so its guided backprop hooks it."""

    def forward(self, x):
        return F.relu6(x)


def _no_inplace(model):
    for m in model.modules():
        if hasattr(m, "inplace"):
            m.inplace = False
    return model


def get_setup(name, lite0_f64, cat_input, tv_model):
    if name == "lite0":
        model = lite0_f64
        x = F.interpolate(cat_input.double(), size=(128, 128), mode="bilinear", align_corners=False)
        classes = torch.tensor([[285, 281, 282]])
    else:
        model = tv_model(name)
        gen = torch.Generator().manual_seed(0)
        x = torch.randn(2, 3, 64, 64, generator=gen, dtype=torch.float64)
        classes = torch.tensor([[3, 7, 1], [5, 0, 999]])
    return _no_inplace(model), x, classes


def assert_maps_close(ours, ref, rtol=1e-6, atol=1e-8):
    """Equal up to float64 rounding: ``atol`` is relative to the largest value of the reference."""
    assert ours.shape == ref.shape
    scale = float(ref.abs().max())
    assert scale > 0, "reference map is all zero: the comparison would prove nothing"
    torch.testing.assert_close(ours, ref, rtol=rtol, atol=atol * scale)


def ours_maps(method, model, x, classes, vjp, **options):
    """attrdist's maps, asserting that the VJP path asked for is the one that ran (no silent fallback)."""
    att = get_method(method, model, vjp=vjp, **options).attribute(x, classes=classes)
    assert att.vjp == vjp, f"asked for {vjp} VJPs, {att.vjp} ran"
    return att.maps


def per_class(fn, classes):
    return torch.stack([fn(classes[:, k]) for k in range(classes.shape[1])], 1)


def captum_guided_model(model):
    clone = copy.deepcopy(model)
    for m in clone.modules():
        if type(m) is torch.nn.ReLU6:
            m.__class__ = ReLU6AsReLU
    return clone


CAPTUM = {
    "gradient": lambda m, layer: (Saliency(m), dict(abs=False)),
    "input_x_gradient": lambda m, layer: (InputXGradient(m), {}),
    "integrated_gradients": lambda m, layer: (IntegratedGradients(m), dict(n_steps=8, method="gausslegendre")),
    "guided_backprop": lambda m, layer: (GuidedBackprop(captum_guided_model(m)), {}),
}
OPTIONS = {"integrated_gradients": dict(steps=8, rule="gausslegendre")}
# Captum builds its interpolation points in float32, so IG agrees to ~1e-7 only
TOLERANCE = {"integrated_gradients": dict(rtol=1e-5, atol=1e-6)}


@pytest.mark.parametrize("vjp", VJP)
@pytest.mark.parametrize("model_name", MODELS)
@pytest.mark.parametrize("method", [*sorted(CAPTUM), "guided_gradcam"])
def test_against_captum(method, model_name, vjp, lite0_f64, cat_input, tv_model):
    if method in ("guided_backprop", "guided_gradcam") and model_name in GELU_MODELS:
        pytest.skip("Captum's guided backprop leaves GELU alone; attrdist's clamps at GELU (documented)")
    model, x, classes = get_setup(model_name, lite0_f64, cat_input, tv_model)
    layer = default_cam_layer(model)
    ours = ours_maps(method, model, x, classes, vjp, **OPTIONS.get(method, {}))
    if method == "guided_gradcam":  # Captum hooks the CAM layer of its own model copy
        clone = captum_guided_model(model)
        peer, kwargs = GuidedGradCam(clone, resolve_module(clone, layer)), dict(interpolate_mode="bilinear")
    else:
        peer, kwargs = CAPTUM[method](model, layer)
    ref = per_class(lambda c: peer.attribute(x.clone().requires_grad_(True), target=c, **kwargs).sum(1).detach(),
                    classes)
    assert_maps_close(ours, ref, **TOLERANCE.get(method, {}))


@pytest.mark.parametrize("vjp", VJP)
@pytest.mark.parametrize("model_name", MODELS)
@pytest.mark.parametrize("resolution", ["native", "input"])
def test_gradcam_against_captum(model_name, resolution, vjp, lite0_f64, cat_input, tv_model):
    model, x, classes = get_setup(model_name, lite0_f64, cat_input, tv_model)
    layer = resolve_module(model, default_cam_layer(model))
    ours = ours_maps("gradcam", model, x, classes, vjp, resolution=resolution)
    peer = LayerGradCam(model, layer)

    def ref_fn(c):
        a = peer.attribute(x, target=c, relu_attributions=True)
        if resolution == "input":
            a = LayerAttribution.interpolate(a, x.shape[-2:], interpolate_mode="bilinear")
        return a[:, 0].detach()

    assert_maps_close(ours, per_class(ref_fn, classes))


@pytest.mark.parametrize("vjp", VJP)
@pytest.mark.parametrize("model_name", MODELS)
def test_gradcam_and_guided_gradcam_at_the_var_authors_settings_against_captum(model_name, vjp, lite0_f64, cat_input,
                                                                              tv_model):
    """The VAR authors' settings (their utils.attr_functions calls Captum with its defaults): Grad-CAM keeps the
    signed CAM (LayerGradCam's relu_attributions=False), upsampled bilinearly; Guided Grad-CAM is Captum's
    GuidedGradCam, whose CAM is ReLU'd and upsampled with interpolate_mode="nearest"."""
    model, x, classes = get_setup(model_name, lite0_f64, cat_input, tv_model)
    layer = default_cam_layer(model)
    ours = ours_maps("gradcam", model, x, classes, vjp, relu=False)
    peer = LayerGradCam(model, resolve_module(model, layer))
    ref = per_class(lambda c: F.interpolate(peer.attribute(x, target=c), size=x.shape[-2:], mode="bilinear",
                                            align_corners=False)[:, 0].detach(), classes)
    assert (ref < 0).any()  # signed: the setting is visible
    assert_maps_close(ours, ref)
    if model_name in GELU_MODELS:
        return  # Captum's guided backprop leaves GELU alone (see test_against_captum)
    ours = ours_maps("guided_gradcam", model, x, classes, vjp, upsample="nearest")
    clone = captum_guided_model(model)
    peer = GuidedGradCam(clone, resolve_module(clone, layer))
    ref = per_class(lambda c: peer.attribute(x.clone().requires_grad_(True), target=c).sum(1).detach(), classes)
    assert_maps_close(ours, ref)


def test_a_broken_batched_path_is_seen(monkeypatch, lite0_f64, cat_input, tv_model):
    """Asking for batched VJPs and getting sequential ones warns, and the parity helper refuses it."""
    import attrdist.methods.base as base

    real = base.class_gradients

    def no_batched(outputs, classes, inputs, mode="batched", retain_graph=False):
        if mode == "batched":
            raise RuntimeError("batched VJP unsupported here")
        return real(outputs, classes, inputs, mode, retain_graph)

    monkeypatch.setattr(base, "class_gradients", no_batched)
    model, x, classes = get_setup("resnet18", lite0_f64, cat_input, tv_model)
    with pytest.warns(RuntimeWarning, match="batched VJP failed"):
        with pytest.raises(AssertionError, match="sequential ran"):
            ours_maps("gradient", model, x, classes, "batched")


def _grad_cam_raw(cam_cls, model, layer, x, c):
    """pytorch-grad-cam's own CAM before its min-max scaling (ReLU'd, native resolution)."""
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    with cam_cls(model=model, target_layers=[layer]) as cam:
        targets = [ClassifierOutputTarget(int(t)) for t in c]
        out = cam.activations_and_grads(x)
        model.zero_grad()
        sum(t(o) for t, o in zip(targets, out, strict=True)).backward()
        a = cam.activations_and_grads.activations[0].numpy()
        g = cam.activations_and_grads.gradients[0].numpy()
        raw = cam.get_cam_image(x, layer, targets, a, g, False)
    return torch.as_tensor(raw).clamp(min=0)


@pytest.mark.parametrize("vjp", VJP)
@pytest.mark.parametrize("model_name", MODELS)
@pytest.mark.parametrize("method", ["gradcam", "layercam"])
def test_against_pytorch_grad_cam(method, model_name, vjp, lite0_f64, cat_input, tv_model):
    from pytorch_grad_cam import GradCAM, LayerCAM

    if model_name == "densenet121":
        pytest.skip("pytorch-grad-cam keeps a view of DenseNet's features output, which torchvision's "
                    "F.relu(inplace=True) then overwrites; Captum (test_gradcam_against_captum) does not")

    model, x, classes = get_setup(model_name, lite0_f64, cat_input, tv_model)
    layer = resolve_module(model, default_cam_layer(model))
    ours = ours_maps(method, model, x, classes, vjp, resolution="native")
    cam_cls = {"gradcam": GradCAM, "layercam": LayerCAM}[method]
    ref = per_class(lambda c: _grad_cam_raw(cam_cls, model, layer, x.clone().requires_grad_(True), c), classes)
    assert_maps_close(ours, ref)


@pytest.mark.parametrize("vjp", VJP)
@pytest.mark.parametrize("model_name", MODELS)
def test_lrp_against_zennit(model_name, vjp, lite0_f64, cat_input, tv_model):
    from zennit.attribution import Gradient
    from zennit.composites import EpsilonPlusFlat

    model, x, classes = get_setup(model_name, lite0_f64, cat_input, tv_model)
    ours = ours_maps("lrp", model, x, classes, vjp)
    n_out = 1000

    def ref_fn(c):
        seed = torch.eye(n_out, dtype=x.dtype)[c]
        with Gradient(model, EpsilonPlusFlat(canonizers=family_of(model).canonizers())) as attributor:
            _, rel = attributor(x, seed)
        return rel.sum(1)

    assert_maps_close(ours, per_class(ref_fn, classes))


@pytest.mark.parametrize("vjp", VJP)
def test_integrated_gradients_black_and_blur_baselines_against_captum(vjp, tv_model):
    model, (mean, std) = tv_model("resnet18"), ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
    x = torch.randn(2, 3, 40, 40, generator=torch.Generator().manual_seed(9), dtype=torch.float64)
    classes = torch.tensor([[3, 7], [5, 0]])
    black = torch.stack([torch.full((40, 40), -m / s, dtype=torch.float64) for m, s in zip(mean, std, strict=True)])
    ours = ours_maps("integrated_gradients", model, x, classes, vjp, steps=8, baseline="black",
                     normalization=(mean, std))
    peer = IntegratedGradients(model)
    ref = per_class(lambda c: peer.attribute(x, baselines=black[None].expand_as(x), target=c, n_steps=8,
                                             method="gausslegendre").sum(1), classes)
    assert_maps_close(ours, ref, **TOLERANCE["integrated_gradients"])
    blurred = torch.from_numpy(np.stack([np.stack([_scipy_blur(x[b, c].numpy(), 10.0) for c in range(3)])
                                         for b in range(2)]))
    ours = ours_maps("integrated_gradients", model, x, classes, vjp, steps=8, baseline="blur")
    ref = per_class(lambda c: peer.attribute(x, baselines=blurred, target=c, n_steps=8,
                                             method="gausslegendre").sum(1), classes)
    assert_maps_close(ours, ref, **TOLERANCE["integrated_gradients"])


def _scipy_blur(a, sigma):
    """A Gaussian blur with reflect-101 borders, truncated at 3 sigma (scipy's 'mirror' mode)."""
    from scipy.ndimage import gaussian_filter

    return gaussian_filter(a, sigma, mode="mirror", truncate=3.0)


@pytest.mark.parametrize("vjp", VJP)
def test_integrated_gradients_uniform_rule_against_saliency(vjp, tv_model):
    """``rule="uniform"``: the mean over linspace(0, 1), as PAIR's saliency package (and the VAR authors) do."""
    saliency = pytest.importorskip("saliency.core")
    model = tv_model("resnet18")
    x = torch.randn(1, 3, 32, 32, generator=torch.Generator().manual_seed(10), dtype=torch.float64)
    ours = ours_maps("integrated_gradients", model, x, torch.tensor([[2, 9]]), vjp, steps=7, rule="uniform")

    def call_model(images, call_model_args=None, expected_keys=None):
        t = torch.from_numpy(np.asarray(images)).permute(0, 3, 1, 2).requires_grad_(True)
        out = model(t)[:, call_model_args["class"]].sum()
        (g,) = torch.autograd.grad(out, t)
        return {saliency.base.INPUT_OUTPUT_GRADIENTS: g.permute(0, 2, 3, 1).detach().numpy()}

    image = x[0].permute(1, 2, 0).numpy()
    for k, c in enumerate((2, 9)):
        ref = saliency.IntegratedGradients().GetMask(image, call_model, {"class": c}, x_steps=7,
                                                     x_baseline=np.zeros_like(image), batch_size=7)
        assert_maps_close(ours[0, k], torch.from_numpy(ref.sum(-1)))
