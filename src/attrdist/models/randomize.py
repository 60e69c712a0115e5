"""Cascading model randomisation (Adebayo et al., 2018) on a copy of the user's model.

The blocks of a model, ordered from the output towards the input, come from its architecture family
(:attr:`~attrdist.models.architectures.Family.blocks`); by default only those that hold a weight other than a
normalisation layer's count (``"weights"``: for a torchvision ResNet-50 ``fc``, the bottlenecks ``layer4.2``
.. ``layer1.0``, then ``conv1``, as Adebayo et al. randomise the logits first and then each block towards the
input; ``bn1`` alone is no block), so that "``d`` of ``n`` blocks randomised" counts layers whose weights
change. At depth ``d`` the first ``d`` blocks of that order are re-initialised with their layers' own
initialisers (``reset_parameters``; ``nn.MultiheadAttention``'s ``_reset_parameters``; BatchNorm running
statistics are kept, as in the reference); the user's model is never modified.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import torch
from torch import nn

from .architectures import BLOCK_KINDS, family_of

__all__ = ["BLOCK_KINDS", "randomization_blocks", "randomized_copy"]


def randomization_blocks(model: nn.Module, blocks: str | Sequence[str] = "weights") -> list[str]:
    """Dotted names of the blocks to randomise, from the output towards the input.

    Args:
        model: The model.
        blocks: ``"weights"`` (default: the family's blocks that hold a conv, linear or attention weight, i.e.
            without normalisation-only modules), ``"all"`` (the family's whole list, normalisation-only modules
            such as ResNet's ``bn1`` included), or the dotted module names themselves in randomisation order (a
            list or one comma-separated string).

    Returns:
        The dotted names, first randomised first.

    Raises:
        ValueError: If an explicit list is empty, repeats a name or names a module the model does not have.
    """
    if isinstance(blocks, str) and blocks in BLOCK_KINDS:
        return family_of(model).blocks_of(model, blocks)
    names = [b.strip() for b in blocks.split(",")] if isinstance(blocks, str) else [str(b) for b in blocks]
    names = [n for n in names if n]
    if not names:
        raise ValueError(f"blocks must be one of {', '.join(BLOCK_KINDS)} or dotted module names, got {blocks!r}")
    known = dict(model.named_modules())
    missing = [n for n in names if n not in known]
    if missing:
        raise ValueError(f"blocks: {type(model).__name__} has no module(s) {missing}; the default blocks are "
                         f"{', '.join(family_of(model).blocks_of(model))}")
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ValueError(f"blocks: {repeated} named more than once")
    return names


def randomized_copy(model: nn.Module, depth: int, seed: int = 0, blocks: list[str] | None = None) -> nn.Module:
    """A copy of ``model`` with its ``depth`` top blocks re-initialised (cumulatively, top-down).

    The same seed gives the same weights: each block is re-initialised from its own seeded generator
    state, so block ``i`` gets the same weights at every depth that includes it.

    Args:
        model: The model (not modified).
        depth: Number of blocks to re-initialise (0: an unchanged copy).
        seed: Seed of the re-initialisation.
        blocks: The block order (default: :func:`randomization_blocks`'s ``"weights"`` list).

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
                if isinstance(m, nn.MultiheadAttention):  # its own initialiser, for in_proj (out_proj is a child)
                    reset = m._reset_parameters
                if callable(reset) and not isinstance(m, nn.modules.batchnorm._BatchNorm):
                    reset()
                elif isinstance(m, nn.modules.batchnorm._BatchNorm) and m.affine:
                    nn.init.ones_(m.weight)
                    nn.init.zeros_(m.bias)
    return clone
