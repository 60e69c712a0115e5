"""Every built-in method against a peer library, in float64 (tolerances: rtol 1e-6, atol 1e-8 * max|ref|)."""

import copy

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
from tests.conftest import tv_model

MODELS = ["resnet18", "densenet121", "convnext_tiny", "lite0"]
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


def get_setup(name, lite0_f64, cat_input):
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


@pytest.mark.parametrize("model_name", MODELS)
@pytest.mark.parametrize("method", [*sorted(CAPTUM), "guided_gradcam"])
def test_against_captum(method, model_name, lite0_f64, cat_input):
    if method in ("guided_backprop", "guided_gradcam") and model_name in GELU_MODELS:
        pytest.skip("Captum's guided backprop leaves GELU alone; attrdist's clamps at GELU (documented)")
    model, x, classes = get_setup(model_name, lite0_f64, cat_input)
    layer = default_cam_layer(model)
    ours = get_method(method, model, **OPTIONS.get(method, {}))(x, classes)
    if method == "guided_gradcam":  # Captum hooks the CAM layer of its own model copy
        clone = captum_guided_model(model)
        peer, kwargs = GuidedGradCam(clone, resolve_module(clone, layer)), dict(interpolate_mode="bilinear")
    else:
        peer, kwargs = CAPTUM[method](model, layer)
    ref = per_class(lambda c: peer.attribute(x.clone().requires_grad_(True), target=c, **kwargs).sum(1).detach(),
                    classes)
    assert_maps_close(ours, ref, **TOLERANCE.get(method, {}))


@pytest.mark.parametrize("model_name", MODELS)
@pytest.mark.parametrize("resolution", ["native", "input"])
def test_gradcam_against_captum(model_name, resolution, lite0_f64, cat_input):
    model, x, classes = get_setup(model_name, lite0_f64, cat_input)
    layer = resolve_module(model, default_cam_layer(model))
    ours = get_method("gradcam", model, resolution=resolution)(x, classes)
    peer = LayerGradCam(model, layer)

    def ref_fn(c):
        a = peer.attribute(x, target=c, relu_attributions=True)
        if resolution == "input":
            a = LayerAttribution.interpolate(a, x.shape[-2:], interpolate_mode="bilinear")
        return a[:, 0].detach()

    assert_maps_close(ours, per_class(ref_fn, classes))


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


@pytest.mark.parametrize("model_name", MODELS)
@pytest.mark.parametrize("method", ["gradcam", "layercam"])
def test_against_pytorch_grad_cam(method, model_name, lite0_f64, cat_input):
    from pytorch_grad_cam import GradCAM, LayerCAM

    if model_name == "densenet121":
        pytest.skip("pytorch-grad-cam keeps a view of DenseNet's features output, which torchvision's "
                    "F.relu(inplace=True) then overwrites; Captum (test_gradcam_against_captum) does not")

    model, x, classes = get_setup(model_name, lite0_f64, cat_input)
    layer = resolve_module(model, default_cam_layer(model))
    ours = get_method(method, model, resolution="native")(x, classes)
    cam_cls = {"gradcam": GradCAM, "layercam": LayerCAM}[method]
    ref = per_class(lambda c: _grad_cam_raw(cam_cls, model, layer, x.clone().requires_grad_(True), c), classes)
    assert_maps_close(ours, ref)


@pytest.mark.parametrize("model_name", MODELS)
def test_lrp_against_zennit(model_name, lite0_f64, cat_input):
    from zennit.attribution import Gradient
    from zennit.composites import EpsilonPlusFlat

    model, x, classes = get_setup(model_name, lite0_f64, cat_input)
    ours = get_method("lrp", model)(x, classes)
    n_out = 1000

    def ref_fn(c):
        seed = torch.eye(n_out, dtype=x.dtype)[c]
        with Gradient(model, EpsilonPlusFlat(canonizers=family_of(model).canonizers())) as attributor:
            _, rel = attributor(x, seed)
        return rel.sum(1)

    assert_maps_close(ours, per_class(ref_fn, classes))
