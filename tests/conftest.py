import copy
import struct
import warnings
import zlib

import pytest
import torch
import torchvision

warnings.filterwarnings("ignore", message="The given NumPy array is not writable")


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: end-to-end runs (subprocesses, benchmarks, browsers) and large parity "
                                       "grids; the fast subset is `pytest -m \"not slow\"`")


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


def _tv_model(name):
    if name not in _CACHE:
        torch.manual_seed(0)
        _CACHE[name] = _randomize_bn(torchvision.models.get_model(name, weights=None)).double().eval()
    return _CACHE[name]


@pytest.fixture(scope="session")
def tv_model():
    """``tv_model(name)``: a torchvision model, random init (seeded, BatchNorm statistics randomised), float64, eval."""
    return _tv_model


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


def _rcc_bundle(files, version=2, compress=()):
    """A bundle with one folder ``/res`` holding ``files`` (name -> bytes); names in ``compress`` zlib'd."""
    names, data = b"", b""
    name_off = {}
    for n in ["res", *files]:
        name_off[n] = len(names)
        names += struct.pack(">HI", len(n), 0) + n.encode("utf-16-be")
    data_off = {}
    for n, blob in files.items():
        stored = struct.pack(">I", len(blob)) + zlib.compress(blob) if n in compress else blob
        data_off[n] = len(data)
        data += struct.pack(">I", len(stored)) + stored
    pad = b"\0" * 8 if version >= 2 else b""

    def node_dir(name_offset, count, first):
        return struct.pack(">IHII", name_offset, 2, count, first) + pad

    def node_file(name_offset, flags, offset):
        return struct.pack(">IHHHI", name_offset, flags, 0, 0, offset) + pad

    tree = node_dir(0, 1, 1) + node_dir(name_off["res"], len(files), 2)
    for n in files:
        tree += node_file(name_off[n], 1 if n in compress else 0, data_off[n])
    header = 20 + (4 if version >= 3 else 0)
    tree_at, data_at = header, header + len(tree)
    names_at = data_at + len(data)
    head = b"qres" + struct.pack(">IIII", version, tree_at, data_at, names_at)
    head += struct.pack(">I", 0) if version >= 3 else b""
    return head + tree + data + names


@pytest.fixture(scope="session")
def rcc_bundle():
    """``rcc_bundle(files, version=2, compress=())``: a Qt resource bundle written byte by byte (Qt's rcc layout)."""
    return _rcc_bundle
