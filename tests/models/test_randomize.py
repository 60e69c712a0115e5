import pytest
import torch
import torchvision

from attrdist.metrics.similarity import similarities
from attrdist.models import load_model
from attrdist.models.randomize import randomization_blocks, randomized_copy


@pytest.mark.parametrize("name, first, last, n", [
    ("resnet50", ["fc", "layer4.2", "layer4.1"], ["layer1.1", "layer1.0", "conv1"], 18),
    ("densenet121", ["classifier", "features.denseblock4.denselayer16", "features.denseblock4.denselayer15"],
     ["features.denseblock1.denselayer2", "features.denseblock1.denselayer1", "features.conv0"], 63),
    ("convnext_tiny", ["classifier.2", "features.7.2", "features.7.1"],
     ["features.1.1", "features.1.0", "features.0.0"], 23),
    ("vit_b_16", ["heads", "encoder.layers.encoder_layer_11", "encoder.layers.encoder_layer_10"],
     ["encoder.layers.encoder_layer_1", "encoder.layers.encoder_layer_0", "conv_proj"], 14),
])
def test_layer_order_from_the_registry(name, first, last, n):
    blocks = randomization_blocks(torchvision.models.get_model(name))
    assert blocks[:3] == first and blocks[-3:] == last and len(blocks) == n


@pytest.mark.parametrize("name, first, last, n", [
    ("resnet50", ["fc", "layer4.2", "layer4.1"], ["layer1.0", "bn1", "conv1"], 19),
    ("densenet121", ["classifier", "features.norm5", "features.denseblock4.denselayer16"],
     ["features.denseblock1.denselayer1", "features.norm0", "features.conv0"], 68),
    ("convnext_tiny", ["classifier.2", "classifier.0", "features.7.2"],
     ["features.1.0", "features.0.1", "features.0.0"], 28),
    ("vit_b_16", ["heads", "encoder.ln", "encoder.layers.encoder_layer_11"],
     ["encoder.layers.encoder_layer_1", "encoder.layers.encoder_layer_0", "conv_proj"], 15),
])
def test_all_blocks_option_keeps_normalisation_only_modules(name, first, last, n):
    blocks = randomization_blocks(torchvision.models.get_model(name), "all")
    assert blocks[:3] == first and blocks[-3:] == last and len(blocks) == n


def test_timm_vit_order():
    timm = pytest.importorskip("timm")
    blocks = randomization_blocks(timm.create_model("vit_tiny_patch16_224"))
    assert blocks[:3] == ["head", "blocks.11", "blocks.10"] and blocks[-1] == "patch_embed"
    assert randomization_blocks(timm.create_model("vit_tiny_patch16_224"), "all")[:3] == ["head", "norm", "blocks.11"]


def _weight_free(module):
    """A plain check: no Conv2d or Linear anywhere in the module (only normalisation layers hold parameters)."""
    for m in module.modules():
        if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear)):
            return False
    return True


def test_default_blocks_skip_batchnorm_only_modules():
    lite0 = load_model("efficientnet_lite0").model
    resnet = torchvision.models.resnet18(weights=None)
    for model, bn_only in ((lite0, {"_bn0", "_bn1"}), (resnet, {"bn1"})):
        children = dict(model.named_children())
        found = {n for n, m in children.items() if any(True for _ in m.parameters()) and _weight_free(m)}
        assert found == bn_only  # the top-level BatchNorm-only modules of each model
        blocks = randomization_blocks(model)
        modules = dict(model.named_modules())
        for name in blocks:
            assert not _weight_free(modules[name]), name
            assert not isinstance(modules[name], torch.nn.BatchNorm2d), name
        assert not bn_only & set(blocks)
    # the paper's order for a ResNet: logits, then each residual block towards the input, then the stem conv
    expected = ["fc"]
    for stage in (4, 3, 2, 1):
        for i in (1, 0):
            expected.append(f"layer{stage}.{i}")
    expected.append("conv1")
    assert randomization_blocks(resnet) == expected
    expected = ["_fc", "_conv_head"] + [f"_blocks.{i}" for i in range(15, -1, -1)] + ["_conv_stem"]
    assert randomization_blocks(lite0) == expected


def test_explicit_block_list():
    model = torchvision.models.resnet18(weights=None)
    assert randomization_blocks(model, ["fc", "layer4", "bn1"]) == ["fc", "layer4", "bn1"]
    assert randomization_blocks(model, "fc, layer4.1,conv1") == ["fc", "layer4.1", "conv1"]
    with pytest.raises(ValueError, match=r"no module\(s\) \['layer9'\]"):
        randomization_blocks(model, "fc,layer9")
    with pytest.raises(ValueError, match="more than once"):
        randomization_blocks(model, ["fc", "fc"])
    with pytest.raises(ValueError, match="weights, all"):
        randomization_blocks(model, "")
    two = randomized_copy(model, 2, blocks=["fc", "bn1"])
    assert not torch.equal(two.fc.weight, model.fc.weight) and torch.equal(two.conv1.weight, model.conv1.weight)


def test_full_depth_reaches_the_stem_conv_and_attention_in_projections():
    model = torchvision.models.resnet18(weights=None)
    n = len(randomization_blocks(model))
    full = randomized_copy(model, n)
    assert not torch.equal(full.conv1.weight, model.conv1.weight)  # the last default block is conv1, not bn1
    vit = torchvision.models.VisionTransformer(image_size=32, patch_size=8, num_layers=2, num_heads=2, hidden_dim=16,
                                               mlp_dim=32, num_classes=5)
    blocks = randomization_blocks(vit)
    assert blocks == ["heads", "encoder.layers.encoder_layer_1", "encoder.layers.encoder_layer_0", "conv_proj"]
    top = randomized_copy(vit, 2)
    layer1, old1 = top.encoder.layers.encoder_layer_1, vit.encoder.layers.encoder_layer_1
    assert not torch.equal(layer1.self_attention.in_proj_weight, old1.self_attention.in_proj_weight)
    assert not torch.equal(layer1.self_attention.out_proj.weight, old1.self_attention.out_proj.weight)
    layer0, old0 = top.encoder.layers.encoder_layer_0, vit.encoder.layers.encoder_layer_0
    assert torch.equal(layer0.self_attention.in_proj_weight, old0.self_attention.in_proj_weight)


def test_user_model_unchanged_and_seeded(tv_model):
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
    assert blocks[:3] == ["_fc", "_conv_head", "_blocks.15"] and blocks[-1] == "_conv_stem" and len(blocks) == 19
    everything = randomization_blocks(load_model().model, "all")
    assert everything[:3] == ["_fc", "_bn1", "_conv_head"] and everything[-2:] == ["_bn0", "_conv_stem"]
    assert len(everything) == 21


@pytest.mark.parametrize("blocks", ["weights", "all", "layer4,layer4.1,fc,bn1"])
def test_randomized_depths_equal_randomized_copies(blocks):
    """One copy moved between depths (up one block at a time, and back down) has every depth's weights exactly."""
    from attrdist.models.randomize import RandomizedDepths

    torch.manual_seed(0)
    model = torchvision.models.resnet18().eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    order = randomization_blocks(model, blocks)
    depths = RandomizedDepths(model, order, seed=3)
    for d in [0, 1, 2, len(order), 1, 3, 0, len(order) - 1]:
        got = depths.at(d).state_dict()
        want = randomized_copy(model, d, 3, order).state_dict()
        assert depths.depth == d and got.keys() == want.keys()
        assert all(torch.equal(got[k], want[k]) for k in want), d
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())  # the user's model is untouched
    with pytest.raises(ValueError, match="depth"):
        depths.at(len(order) + 1)
