import pytest
import torch
import torchvision

from attrdist.models import WeightsUnavailableError, default_cam_layer, family_of, load_model
from attrdist.models.efficientnet_lrp import EfficientNetLiteCanonizer


def test_default_model_offline(lite0, cat_input):
    assert not lite0.model.training
    assert lite0.class_names[285] == "Egyptian cat" and len(lite0.wnids) == 1000
    with torch.no_grad():
        top = lite0.model(cat_input).argmax(1).item()
    assert lite0.class_names[top] in ("tiger cat", "tabby", "Egyptian cat")
    assert family_of(lite0.model).name == "efficientnet_lite" and default_cam_layer(lite0.model) == "_bn1"


def test_torchvision_missing_weights_message():
    with pytest.raises(WeightsUnavailableError, match=r"resnet18-.*\.pth.*--weights PATH"):
        load_model("torchvision:resnet18")


def test_torchvision_random_and_state_dict(tmp_path):
    lm = load_model("torchvision:resnet18", weights="random")
    assert lm.preprocess.crop == 224 and lm.preprocess.resize == 256 and family_of(lm.model).name == "resnet"
    torch.save({"state_dict": lm.model.state_dict()}, tmp_path / "w.pth")
    again = load_model("torchvision:resnet18", weights=str(tmp_path / "w.pth"))
    x = torch.randn(1, 3, 64, 64)
    torch.testing.assert_close(again.model(x), lm.model(x))
    with pytest.raises(WeightsUnavailableError, match="does not exist"):
        load_model("torchvision:resnet18", weights=str(tmp_path / "nope.pth"))


def test_checkpoint_path(tmp_path):
    model = torchvision.models.resnet18(num_classes=7).eval()
    torch.jit.save(torch.jit.script(model), tmp_path / "m.pt")
    lm = load_model(str(tmp_path / "m.pt"))
    assert len(lm.class_names) == 7 and lm.class_names[0] == "class 0"
    for weights in ("random", str(tmp_path / "m.pt"), "IMAGENET1K_V1"):  # a model file holds its own weights
        with pytest.raises(ValueError, match="does not apply to m.pt: a model file holds its own weights"):
            load_model(str(tmp_path / "m.pt"), weights=weights)
    torch.save(model.state_dict(), tmp_path / "sd.pt")
    with pytest.raises(ValueError, match="name the architecture"):
        load_model(str(tmp_path / "sd.pt"))


def test_unknown_names():
    with pytest.raises(ValueError, match="unknown model"):
        load_model("resnet9000")
    with pytest.raises(ValueError, match="torchvision has no model"):
        load_model("torchvision:resnet9000")


def test_timm_offline_error_is_fast_and_clear():
    pytest.importorskip("timm")
    with pytest.raises(WeightsUnavailableError, match="--weights PATH"):
        load_model("timm:resnet18")
    lm = load_model("timm:resnet18", weights="random")
    assert lm.preprocess.crop == 224


def test_lite_canonizer_keeps_the_function(lite0, cat_input):
    from zennit.core import Composite

    model = lite0.model
    with torch.no_grad():
        before = model(cat_input)
        with Composite(canonizers=[EfficientNetLiteCanonizer()]).context(model) as canon:
            during = canon(cat_input)
        after = model(cat_input)
    torch.testing.assert_close(during, before, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(after, before, rtol=0, atol=0)


def test_torchvision_weights_by_name():
    """The paper's ``pretrained=True`` weights are IMAGENET1K_V1: named, their file and preprocessing are V1's."""
    with pytest.raises(WeightsUnavailableError, match=r"ResNet50_Weights\.IMAGENET1K_V1.*resnet50-0676ba61\.pth"):
        load_model("torchvision:resnet50", weights="IMAGENET1K_V1")
    with pytest.raises(WeightsUnavailableError, match="published weights: IMAGENET1K_V1, IMAGENET1K_V2, DEFAULT"):
        load_model("torchvision:resnet50", weights="IMAGENET1K_V7")


@pytest.mark.parametrize("content", [b"hello", b"", b"PK\x03\x04garbage"])
def test_a_file_that_is_no_checkpoint_is_a_clear_error(tmp_path, content):
    f = tmp_path / "m.pt"
    f.write_bytes(content)
    with pytest.raises(ValueError, match="neither a TorchScript file nor a PyTorch checkpoint"):
        load_model(str(f))
    with pytest.raises(ValueError, match="not a PyTorch state dict"):
        load_model("torchvision:resnet18", weights=str(f))
    torch.save([1, 2], f)
    with pytest.raises(ValueError, match="holds a list, not a state dict"):
        load_model("torchvision:resnet18", weights=str(f))
