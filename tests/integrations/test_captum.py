"""attrdist.integrations.captum.VARAttribution: a Captum Attribution whose maps are VAR's, inside NoiseTunnel too."""

import subprocess
import sys

import pytest
import torch
import torchvision.transforms.functional as TF

from attrdist import VAR
from attrdist.data import sample_image
from attrdist.methods import get_method
from attrdist.var import DEFAULT_PRESET, PRESETS

captum_attr = pytest.importorskip("captum.attr")

from attrdist.integrations.captum import VARAttribution  # noqa: E402

CASES = [("gradcam", DEFAULT_PRESET), ("gradcam", "vanilla"), ("gradient", DEFAULT_PRESET), ("gradient", "paper"),
         ("gradient", "vanilla")]


@pytest.fixture
def batch(tiny_cnn):
    """The tiny CNN in float64, two sample photos at 32 pixels, and targets that are not the predicted class."""
    model = tiny_cnn.double()
    x = torch.stack([(TF.to_tensor(sample_image(n).resize((32, 32))) - 0.5) / 0.25 for n in ("coffee", "rocket")])
    x = x.double()
    with torch.no_grad():
        ranked = model(x).argsort(1, descending=True)
    return model, x, torch.stack([ranked[0, 1], ranked[1, 2]])


def _close(actual, expected):
    """Equal up to float64 rounding, at the maps' own scale (they are ~1e-4: assert_close's atol would be loose)."""
    torch.testing.assert_close(actual, expected, rtol=1e-7, atol=1e-9 * float(expected.abs().max()))


def _var_maps(model, x, y, method, variant):
    result = VAR(get_method(method, model), classes="top3+worst",
                 preset=None if variant == "vanilla" else variant).attribute(x, target=y)
    return result.raw_target if variant == "vanilla" else result.refined_target


@pytest.mark.parametrize(("method", "variant"), CASES)
def test_attribute_is_the_var_target_map(batch, method, variant):
    model, x, y = batch
    va = VARAttribution(method, model, variant=variant)
    out = va.attribute(x, target=y)
    assert out.shape == (2, 1, 32, 32) and out.dtype == torch.float64
    ref = _var_maps(model, x, y, method, variant)
    _close(out[:, 0], ref)
    _close(va.attribute(x, target=y.tolist()), out)  # a list of targets, as Captum allows
    one = VARAttribution(get_method(method, model), variant=variant).attribute(x[1:], target=int(y[1]))
    _close(one[0], out[1])  # a built Attributor and an int target


@pytest.mark.parametrize(("method", "variant"), [("gradcam", DEFAULT_PRESET), ("gradient", "paper")])
@pytest.mark.parametrize(("nt_type", "batch_size"), [("smoothgrad", None), ("vargrad", 2)])
def test_noise_tunnel_averages_var_maps_over_its_noise(batch, monkeypatch, method, variant, nt_type, batch_size):
    """NoiseTunnel's result is the mean (or variance) over its noisy copies of VAR's maps of each copy.

    The noisy inputs NoiseTunnel draws are recorded; the reference explains them one noise draw at a time, with
    the per-sample target, in a plain loop.
    """
    model, x, y = batch
    drawn = []
    add_noise = captum_attr.NoiseTunnel._add_noise_to_inputs

    def record(self, n, inputs, stdevs):
        noisy = add_noise(self, n, inputs, stdevs)
        drawn.append(noisy[0].detach().clone())
        return noisy

    monkeypatch.setattr(captum_attr.NoiseTunnel, "_add_noise_to_inputs", record)
    torch.manual_seed(0)
    nt = captum_attr.NoiseTunnel(VARAttribution(method, model, variant=variant))
    out = nt.attribute(x, nt_type=nt_type, nt_samples=3, nt_samples_batch_size=batch_size, stdevs=0.3, target=y)
    assert out.shape == (2, 1, 32, 32)
    # every partition repeats each sample (repeat_interleave): sample b's copies are rows b * n ... b * n + n - 1
    copies = torch.cat([d.view(2, -1, *x.shape[1:]) for d in drawn], 1)
    assert copies.shape[1] == 3 and not torch.allclose(copies[:, 0], x)
    maps = torch.stack([_var_maps(model, copies[:, j], y, method, variant) for j in range(3)], 1)
    assert maps.flatten(2).ne(0).any(2).all()
    ref = maps.mean(1) if nt_type == "smoothgrad" else (maps**2).mean(1) - maps.mean(1) ** 2
    assert ref.abs().max() > 0
    _close(out[:, 0], ref)


def test_captum_contract(batch):
    model, x, y = batch
    va = VARAttribution("gradcam", model)
    assert isinstance(va, captum_attr.Attribution) and va.forward_func is model
    assert va.has_convergence_delta() is False and va.multiplies_by_inputs is False
    assert va.variant == DEFAULT_PRESET and va.method.name == "gradcam"
    (as_tuple,) = va.attribute((x,), target=y)  # a tuple of one input gives a tuple back, as in Captum
    _close(as_tuple, va.attribute(x, target=y))
    pred = va.attribute(x)  # default target: the predicted class, as in VAR
    _close(pred[:, 0], VAR(get_method("gradcam", model)).attribute(x).refined_target)
    assert not torch.allclose(pred, as_tuple)
    ref = _var_maps(model, x, y, "gradient", DEFAULT_PRESET)
    with torch.no_grad():  # NoiseTunnel calls under no_grad; gradient methods need the graph
        _close(VARAttribution("gradient", model).attribute(x, target=y)[:, 0], ref)


def test_errors_are_one_line(batch):
    model, x, y = batch
    with pytest.raises(ValueError, match="unknown method 'gradcma'") as err:
        VARAttribution("gradcma", model)
    assert "\n" not in str(err.value) and "gradcam" in str(err.value)
    with pytest.raises(ValueError, match="unknown variant 'Paper'") as err:
        VARAttribution("gradcam", model, variant="Paper")
    assert all(name in str(err.value) for name in ["vanilla", *PRESETS])
    with pytest.raises(TypeError, match="needs a model"):
        VARAttribution("gradcam")
    va = VARAttribution("gradcam", model)
    with pytest.raises(TypeError, match=r"unsupported argument\(s\) \['baselines'\]"):
        va.attribute(x, target=y, baselines=x * 0)
    with pytest.raises(TypeError, match="no convergence delta"):
        va.attribute(x, target=y, return_convergence_delta=True)
    with pytest.raises(TypeError, match="one input tensor"):
        va.attribute((x, x), target=y)


def test_without_captum_the_module_imports_and_says_what_to_install():
    code = ("import sys\nsys.modules['captum'] = None\nimport torch\n"
            "from attrdist.integrations.captum import VARAttribution\n"
            "try:\n    VARAttribution('gradcam', torch.nn.Sequential(torch.nn.Conv2d(3, 2, 3), torch.nn.Flatten()))\n"
            "except ImportError as err:\n    print(err)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "pip install 'attrdist[peers]'" in out.stdout
