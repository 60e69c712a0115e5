"""attrdist.integrations.quantus.explain as Quantus' explain_func: the maps it gives Quantus are VAR's (or the method's
raw maps), and Quantus' RelevanceMassAccuracy on them is attrdist's region_attribution."""

import numpy as np
import pytest
import torch
import torchvision.transforms.functional as TF

from attrdist import VAR
from attrdist.data import sample_image
from attrdist.methods import get_method
from attrdist.metrics import region_attribution
from attrdist.var import DEFAULT_PRESET, PRESETS

quantus = pytest.importorskip("quantus")

from attrdist.integrations.quantus import explain  # noqa: E402

# (method, variant, whether RelevanceMassAccuracy scores |A|): Grad-CAM maps are ReLU'd, gradients are signed
CASES = [("gradcam", "vanilla", False), ("gradcam", DEFAULT_PRESET, False),
         ("gradient", "vanilla", True), ("gradient", DEFAULT_PRESET, True)]
IDS = [f"{m}-{v}" for m, v, _ in CASES]


@pytest.fixture
def batch(tiny_cnn):
    """Three sample photos at 32 pixels, targets not all the predicted class, one box per photo."""
    x = torch.stack([(TF.to_tensor(sample_image(n).resize((32, 32))) - 0.5) / 0.25
                     for n in ("chelsea", "coffee", "rocket")])
    with torch.no_grad():
        ranked = tiny_cnn(x).argsort(1, descending=True)
    y = torch.stack([ranked[0, 1], ranked[1, 0], ranked[2, 3]])  # the 2nd, the 1st and the 4th class
    masks = torch.zeros(3, 32, 32, dtype=torch.bool)
    for i, (t, b, lft, r) in enumerate([(4, 20, 6, 26), (10, 30, 0, 16), (0, 32, 12, 20)]):
        masks[i, t:b, lft:r] = True
    return tiny_cnn, x, y, masks


def _var_maps(model, x, y, method, variant, classes="top3+worst"):
    """The target maps straight from VAR: its raw maps for "vanilla", else its refined ones."""
    result = VAR(get_method(method, model), classes=classes,
                 preset=None if variant == "vanilla" else variant).attribute(x, target=y)
    return result.raw_target if variant == "vanilla" else result.refined_target


@pytest.mark.parametrize(("method", "variant", "_"), CASES, ids=IDS)
def test_maps_are_vars(batch, method, variant, _):
    model, x, y, _ = batch
    a = explain(model, x.numpy(), y.numpy(), method=method, variant=variant)
    assert isinstance(a, np.ndarray) and a.shape == (3, 1, 32, 32) and a.dtype == np.float32
    ref = _var_maps(model, x, y, method, variant)
    torch.testing.assert_close(torch.from_numpy(a[:, 0]), ref, rtol=1e-5, atol=1e-5 * float(ref.abs().max()))
    # the targets are honoured: the predicted class's maps differ where the target is another class
    with torch.no_grad():
        predicted = model(x).argmax(1)
    pred = explain(model, x.numpy(), predicted.numpy(), method=method, variant=variant)
    assert not np.allclose(pred[0], a[0]) and np.array_equal(pred[1], a[1])


@pytest.mark.parametrize(("method", "variant", "abs_"), CASES, ids=IDS)
def test_relevance_mass_accuracy_is_region_attribution(batch, method, variant, abs_):
    model, x, y, masks = batch
    rma = quantus.RelevanceMassAccuracy(abs=abs_, normalise=False, disable_warnings=True)
    scores = rma(model=model, x_batch=x.numpy(), y_batch=y.numpy(), a_batch=None,
                 s_batch=masks.numpy()[:, None].astype(float), explain_func=explain,
                 explain_func_kwargs={"method": method, "variant": variant}, device="cpu")
    ref = _var_maps(model, x, y, method, variant)
    ours = region_attribution(ref.abs() if abs_ else ref, masks)
    assert ((ours > 0) & (ours < 1)).all()  # neither empty nor whole: the box cuts every map
    np.testing.assert_allclose(np.asarray(scores, dtype=np.float64), ours.double().numpy(), rtol=1e-5)


@pytest.mark.parametrize(("method", "variant", "_"), CASES, ids=IDS)
def test_faithfulness_correlation_scores_the_same_maps(batch, method, variant, _):
    """Quantus' own randomness (the feature subsets) is seeded alike: explain_func and a_batch = VAR's maps agree."""
    model, x, y, _ = batch
    kwargs = {"nr_runs": 5, "subset_size": 64, "return_aggregate": False, "disable_warnings": True}
    np.random.seed(0)
    via_explain = quantus.FaithfulnessCorrelation(**kwargs)(
        model=model, x_batch=x.numpy(), y_batch=y.numpy(), a_batch=None, explain_func=explain,
        explain_func_kwargs={"method": method, "variant": variant})
    np.random.seed(0)
    via_maps = quantus.FaithfulnessCorrelation(**kwargs)(
        model=model, x_batch=x.numpy(), y_batch=y.numpy(), a_batch=_var_maps(model, x, y, method, variant).numpy())
    assert np.isfinite(via_explain).all()
    np.testing.assert_allclose(via_explain, via_maps, rtol=1e-5)


@pytest.mark.parametrize(("method", "variant", "_"), CASES, ids=IDS)
def test_random_logit_explains_another_class(batch, method, variant, _):
    """RandomLogit compares the target's map with that of a random other class: explain gives VAR's map of each."""
    model, x, y, _ = batch
    seen = []

    def record(a, b, batched=True):
        seen.append((a, b))
        return np.abs(a - b).sum(1)

    scores = quantus.RandomLogit(num_classes=10, seed=0, similarity_func=record, abs=False, normalise=False,
                                 disable_warnings=True)(
        model=model, x_batch=x.numpy(), y_batch=y.numpy(), a_batch=None, explain_func=explain,
        explain_func_kwargs={"method": method, "variant": variant})
    (a, b), = seen
    per_class = [_var_maps(model, x, torch.full((3,), c), method, variant).flatten(1) for c in range(10)]
    for i in range(3):
        assert torch.allclose(torch.from_numpy(a[i]), per_class[int(y[i])][i], rtol=1e-5, atol=1e-9)
        matches = [c for c in range(10) if torch.allclose(torch.from_numpy(b[i]), per_class[c][i], rtol=1e-5,
                                                           atol=1e-9)]
        assert matches and int(y[i]) not in matches, (i, matches)
    assert len(scores) == 3 and (np.asarray(scores) > 0).all()


def test_a_predefined_class_set_and_method_options(batch):
    model, x, y, _ = batch
    classes = sorted({*y.tolist(), 0, 9})
    a = explain(model, x.numpy(), y.numpy(), method="gradcam", variant="paper", classes=classes, relu=False)
    result = VAR(get_method("gradcam", model, relu=False), classes=classes, preset="paper").attribute(x, target=y)
    torch.testing.assert_close(torch.from_numpy(a[:, 0]), result.refined_target)
    assert (a < 0).any()  # relu=False reached the method


def test_errors_are_one_line_and_list_the_names(batch):
    model, x, y, _ = batch
    with pytest.raises(ValueError, match="unknown method 'gradcma'") as err:
        explain(model, x.numpy(), y.numpy(), method="gradcma")
    assert "\n" not in str(err.value) and "gradcam" in str(err.value) and "integrated_gradients" in str(err.value)
    with pytest.raises(ValueError, match="unknown variant 'smoothed_positive'") as err:
        explain(model, x.numpy(), y.numpy(), variant="smoothed_positive")
    assert "\n" not in str(err.value) and all(name in str(err.value) for name in ["vanilla", *PRESETS])
    with pytest.raises(ValueError, match="not in (its|the) class set"):
        explain(model, x.numpy(), y.numpy(), variant="paper", classes=[c for c in range(10) if c != int(y[0])])
