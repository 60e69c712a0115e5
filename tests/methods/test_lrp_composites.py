"""The LRP composites are Zennit's own, read from its registry (no hand-kept copy of its class names)."""

import pytest
import torch
from torch import nn
from zennit import composites

from attrdist.methods import get_method
from attrdist.methods.lrp import lrp_composites

ACCEPTED = {"epsilon_plus_flat", "epsilon_plus", "epsilon_alpha2_beta1_flat", "epsilon_alpha2_beta1",
            "epsilon_gamma_box"}


def test_the_names_the_cli_accepted_are_zennits_lrp_composites():
    assert set(lrp_composites()) == ACCEPTED
    assert all(lrp_composites()[n] is composites.COMPOSITES[n] for n in ACCEPTED)


def test_an_unknown_composite_lists_the_names():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 5))
    with pytest.raises(ValueError, match="epsilon_plus_flat"):
        get_method("lrp", model, composite="guided_backprop")  # in Zennit's registry, but not LRP
    lrp = get_method("lrp", model, composite="epsilon_gamma_box")
    assert lrp.attribute(torch.rand(1, 3, 8, 8), classes=[0, 1]).maps.shape == (1, 2, 8, 8)
