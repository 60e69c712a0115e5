"""Cascading model randomisation (Adebayo et al., 2018) on a copy of the user's model.

The blocks of a model, ordered from the output towards the input, come from its architecture family
(:attr:`~attrdist.models.architectures.Family.blocks`). At depth ``d`` the first ``d`` blocks of that
order are re-initialised with their layers' own ``reset_parameters`` (BatchNorm running statistics are
kept, as in the reference); the user's model is never modified.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from .architectures import family_of

__all__ = ["randomization_blocks", "randomized_copy"]


def randomization_blocks(model: nn.Module) -> list[str]:
    """Dotted names of the model's blocks, from the output towards the input."""
    return family_of(model).blocks_of(model)


def randomized_copy(model: nn.Module, depth: int, seed: int = 0, blocks: list[str] | None = None) -> nn.Module:
    """A copy of ``model`` with its ``depth`` top blocks re-initialised (cumulatively, top-down).

    The same seed gives the same weights: each block is re-initialised from its own seeded generator
    state, so block ``i`` gets the same weights at every depth that includes it.

    Args:
        model: The model (not modified).
        depth: Number of blocks to re-initialise (0: an unchanged copy).
        seed: Seed of the re-initialisation.
        blocks: The block order (default: :func:`randomization_blocks`).

    Returns:
        The randomised copy, in the mode of ``model``.

    Raises:
        ValueError: If ``depth`` exceeds the number of blocks.
    """
    order = blocks if blocks is not None else randomization_blocks(model)
    if not 0 <= depth <= len(order):
        raise ValueError(f"depth must lie in [0, {len(order)}], got {depth}")
    clone = copy.deepcopy(model)
    modules = dict(clone.named_modules())
    with torch.random.fork_rng(devices=[]):
        for i, name in enumerate(order[:depth]):
            torch.manual_seed(seed * 100_003 + i)
            for m in modules[name].modules():
                reset = getattr(m, "reset_parameters", None)
                if callable(reset) and not isinstance(m, nn.modules.batchnorm._BatchNorm):
                    reset()
                elif isinstance(m, nn.modules.batchnorm._BatchNorm) and m.affine:
                    nn.init.ones_(m.weight)
                    nn.init.zeros_(m.bias)
    return clone
