import copy
import warnings

import pytest
import torch
import torchvision

warnings.filterwarnings("ignore", message="The given NumPy array is not writable")


def _tiny_cnn():
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.BatchNorm2d(8), torch.nn.ReLU(inplace=True),
        torch.nn.Conv2d(8, 8, 3, padding=1), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1),
        torch.nn.Flatten(), torch.nn.Linear(8, 10),
    )


@pytest.fixture
def tiny_cnn():
    """A small random CNN with 10 classes (float32)."""
    return _tiny_cnn().eval()


def _randomize_bn(model, seed=0):
    gen = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=gen) * 0.1)
            m.running_var.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
            m.weight.data.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
            m.bias.data.copy_(torch.randn(m.num_features, generator=gen) * 0.1)
    return model


_CACHE = {}


def tv_model(name):
    """torchvision model, random init (seeded), float64, eval."""
    if name not in _CACHE:
        torch.manual_seed(0)
        _CACHE[name] = _randomize_bn(torchvision.models.get_model(name, weights=None)).double().eval()
    return _CACHE[name]


@pytest.fixture(scope="session")
def lite0():
    from attrdist.models import load_model

    return load_model("efficientnet_lite0")


@pytest.fixture(scope="session")
def lite0_f64(lite0):
    return copy.deepcopy(lite0.model).double().eval()


@pytest.fixture(scope="session")
def cat_input(lite0):
    from attrdist.data import sample_image

    return lite0.preprocess(sample_image("chelsea"))[None]
