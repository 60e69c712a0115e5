import pytest
import torch
import torchvision

from attrdist.metrics.similarity import similarities
from attrdist.models import load_model
from attrdist.models.randomize import randomization_blocks, randomized_copy
from tests.conftest import tv_model


@pytest.mark.parametrize("name, first, last, n", [
    ("resnet50", ["fc", "layer4.2", "layer4.1"], ["layer1.0", "bn1", "conv1"], 19),
    ("densenet121", ["classifier", "features.norm5", "features.denseblock4.denselayer16"],
     ["features.denseblock1.denselayer1", "features.norm0", "features.conv0"], 68),
    ("convnext_tiny", ["classifier.2", "classifier.0", "features.7.2"],
     ["features.1.0", "features.0.1", "features.0.0"], 28),
    ("vit_b_16", ["heads", "encoder.ln", "encoder.layers.encoder_layer_11"],
     ["encoder.layers.encoder_layer_1", "encoder.layers.encoder_layer_0", "conv_proj"], 15),
])
def test_layer_order_from_the_registry(name, first, last, n):
    blocks = randomization_blocks(torchvision.models.get_model(name))
    assert blocks[:3] == first and blocks[-3:] == last and len(blocks) == n


def test_timm_vit_order():
    timm = pytest.importorskip("timm")
    blocks = randomization_blocks(timm.create_model("vit_tiny_patch16_224"))
    assert blocks[:3] == ["head", "norm", "blocks.11"] and blocks[-1] == "patch_embed"


def test_user_model_unchanged_and_seeded():
    model = tv_model("resnet18")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    a = randomized_copy(model, 3, seed=1)
    b = randomized_copy(model, 3, seed=1)
    c = randomized_copy(model, 3, seed=2)
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k])
    assert torch.equal(a.fc.weight, b.fc.weight) and not torch.equal(a.fc.weight, c.fc.weight)
    assert not torch.equal(a.fc.weight, model.fc.weight)
    assert torch.equal(a.layer3[0].conv1.weight, model.layer3[0].conv1.weight)  # below depth 3
    assert torch.equal(a.layer4[1].bn1.running_var, model.layer4[1].bn1.running_var)  # stats kept
    # cumulative: block 0 gets the same weights at every depth that includes it
    assert torch.equal(randomized_copy(model, 5, seed=1).fc.weight, a.fc.weight)
    with pytest.raises(ValueError, match="depth"):
        randomized_copy(model, 99)


def test_depth_zero_similarity_one(lite0, cat_input):
    from attrdist import get_method

    model = randomized_copy(lite0.model, 0)
    a = get_method("gradcam", lite0.model)(cat_input, "top2")[0, 0]
    b = get_method("gradcam", model)(cat_input, "top2")[0, 0]
    assert all(v == pytest.approx(1.0, abs=1e-9) for v in similarities(a, b).values())


def test_similarity_values():
    a = torch.arange(1024.0).view(32, 32)
    sims = similarities(a, -a)
    assert sims["spearman"] == pytest.approx(-1) and sims["pearson"] == pytest.approx(-1)
    assert sims["cosine"] == pytest.approx(-1) and sims["spearman_abs"] == pytest.approx(1)
    assert similarities(a, torch.zeros(32, 32))["cosine"] == 0.0
    assert similarities(a, a * 3)["ssim"] == pytest.approx(1.0)
    assert similarities(a, a)["hog_pearson"] == pytest.approx(1)


def test_default_model_blocks():
    blocks = randomization_blocks(load_model().model)
    assert blocks[:3] == ["_fc", "_bn1", "_conv_head"] and blocks[-1] == "_conv_stem" and len(blocks) == 21
