import pytest
import torch

from attrdist import VAR, get_method
from attrdist.methods import CallableAdapter, CaptumAdapter, GradCamAdapter


@pytest.fixture(scope="module")
def setup(tv_model):
    model = tv_model("resnet18")
    x = torch.randn(2, 3, 48, 48, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    return model, x, torch.tensor([[1, 2, 3], [4, 5, 6]])


def test_captum_adapter_equals_builtin(setup):
    from captum.attr import Saliency

    model, x, classes = setup
    adapted = CaptumAdapter(model, Saliency(model), abs=False)(x, classes)
    torch.testing.assert_close(adapted, get_method("gradient", model)(x, classes))


def test_grad_cam_adapter_is_raw(setup):
    from pytorch_grad_cam import GradCAM

    model, x, classes = setup
    with GradCAM(model=model, target_layers=[model.layer4]) as cam:
        adapted = CallableAdapter.__call__(GradCamAdapter(model, cam), x, classes)
    ours = get_method("gradcam", model)(x, classes)
    torch.testing.assert_close(adapted, ours)
    assert adapted.amax() > 1.0 or adapted.flatten(2).amax(-1).std() > 0  # not min-max scaled per map


def test_callable_adapter_and_var(setup):
    model, x, classes = setup
    calls = []

    def saliency(inp, cls):
        calls.append(cls.clone())
        out = model(inp)
        (g,) = torch.autograd.grad(out.gather(1, cls[:, None]).sum(), inp)
        return g  # [B, C, H, W]: channels are summed by the adapter

    adapter = CallableAdapter(model, saliency)
    torch.testing.assert_close(adapter(x, classes), get_method("gradient", model)(x, classes))
    assert len(calls) == 3  # once per class
    res = VAR(adapter, classes="top2+worst").attribute(x)
    assert res.refined.shape == (2, 3, 48, 48) and res.refined_target.shape == (2, 48, 48)


def test_callable_adapter_bad_shape(setup):
    model, x, classes = setup
    adapter = CallableAdapter(model, lambda inp, c: torch.zeros(5))
    with pytest.raises(ValueError, match="expected \\[B, H, W\\]"):
        adapter(x, classes)


def test_var_needs_a_method(setup):
    with pytest.raises(TypeError, match="CallableAdapter"):
        VAR(lambda x, c: x)
