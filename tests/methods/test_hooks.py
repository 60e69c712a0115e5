"""Hooks are scoped: after any call, also one that raised, the model is exactly as it was."""

import copy

import pytest
import torch

from attrdist import get_method, list_methods
from attrdist.methods.hooks import resolve_module

FAST = {"integrated_gradients": dict(steps=2), "smoothgrad": dict(samples=2)}


def snapshot(model):
    return {
        "hooks": [
            (n, len(m._forward_hooks), len(m._forward_pre_hooks), len(m._backward_hooks),
             len(getattr(m, "_backward_pre_hooks", {})))
            for n, m in model.named_modules()
        ],
        "state": {k: v.clone() for k, v in model.state_dict().items()},
        "requires_grad": [p.requires_grad for p in model.parameters()],
        "training": [m.training for m in model.modules()],
        "inplace": [getattr(m, "inplace", None) for m in model.modules()],
        "forward": [m.__dict__.get("forward") for m in model.modules()],
    }


def assert_same(before, after):
    assert before["hooks"] == after["hooks"]
    assert before["state"].keys() == after["state"].keys()
    for k in before["state"]:
        assert torch.equal(before["state"][k], after["state"][k]), k
    for key in ("requires_grad", "training", "inplace", "forward"):
        assert before[key] == after[key], key


@pytest.fixture
def model(tv_model):
    m = copy.deepcopy(tv_model("resnet18"))
    m.train()  # a mode the call must restore
    m.layer1.eval()
    m.fc.weight.requires_grad_(False)
    return m


@pytest.mark.parametrize("name", list_methods("cnn"))
def test_model_unchanged_after_call(name, model):
    before = snapshot(model)
    get_method(name, model, **FAST.get(name, {}))(torch.randn(1, 3, 32, 32, dtype=torch.float64), "top2")
    assert_same(before, snapshot(model))


@pytest.mark.parametrize("name", list_methods("cnn"))
def test_model_unchanged_after_error(name, model):
    before = snapshot(model)
    method = get_method(name, model, **FAST.get(name, {}))
    with pytest.raises(ValueError, match="out of range"):
        # the class check runs after the forward pass, inside the hooks' scope
        method(torch.randn(1, 3, 32, 32, dtype=torch.float64), torch.tensor([[1, 5000]]))
    assert_same(before, snapshot(model))


def test_unknown_layer_is_clear(model):
    with pytest.raises(ValueError, match="no layer 'layer5'.*layer4"):
        get_method("gradcam", model, layer="layer5")
    with pytest.raises(ValueError, match="not a sub-module"):
        resolve_module(model, torch.nn.Conv2d(1, 1, 1))


def test_unknown_method_is_clear(model):
    with pytest.raises(KeyError, match="unknown method 'gradcm'.*gradcam"):
        get_method("gradcm", model)


@pytest.mark.parametrize("x, msg", [
    (torch.randn(3, 32, 32), r"\[B, C, H, W\]"),
    (torch.full((1, 3, 8, 8), float("nan")), "NaN"),
    (torch.zeros(1, 3, 8, 8, dtype=torch.long), "floating"),
])
def test_bad_input_is_clear(x, msg, model):
    with pytest.raises(ValueError, match=msg):
        get_method("gradient", model)(x, "top2")


def test_wrong_number_of_class_rows(model):
    with pytest.raises(ValueError, match="rows for a batch"):
        get_method("gradient", model)(torch.randn(2, 3, 8, 8, dtype=torch.float64), torch.tensor([[1, 2]]))
