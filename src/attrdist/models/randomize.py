"""Cascading model randomisation (Adebayo et al., 2018) on a copy of the user's model.

The blocks of a model, ordered from the output towards the input, come from its architecture family
(:attr:`~attrdist.models.architectures.Family.blocks`); by default only those that hold a weight other than a
normalisation layer's count (``"weights"``: for a torchvision ResNet-50 ``fc``, the bottlenecks ``layer4.2``
.. ``layer1.0``, then ``conv1``, as Adebayo et al. randomise the logits first and then each block towards the
input; ``bn1`` alone is no block), so that "``d`` of ``n`` blocks randomised" counts layers whose weights
change. At depth ``d`` the first ``d`` blocks of that order are re-initialised with their layers' own
initialisers (``reset_parameters``; ``nn.MultiheadAttention``'s ``_reset_parameters``; BatchNorm running
statistics are kept, as in the reference); the user's model is never modified.

:func:`randomized_copy` builds one depth's model. :class:`RandomizedDepths` serves every depth of a run from one
copy: each block's re-initialised weights are drawn once (the same values :func:`randomized_copy` gives), and the
copy moves from depth to depth by loading them, depth ``d + 1`` being depth ``d``'s model plus one more block.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import torch
from torch import nn

from .architectures import BLOCK_KINDS, family_of

__all__ = ["BLOCK_KINDS", "RandomizedDepths", "randomization_blocks", "randomized_copy"]


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
            _reinitialize(modules[name], seed * 100_003 + i)
    return clone


def _reinitialize(block: nn.Module, seed: int) -> None:
    """Re-initialise one block in place with its layers' own initialisers, from ``seed``."""
    torch.manual_seed(seed)
    for m in block.modules():
        reset = getattr(m, "reset_parameters", None)
        if isinstance(m, nn.MultiheadAttention):  # its own initialiser, for in_proj (out_proj is a child)
            reset = m._reset_parameters
        if callable(reset) and not isinstance(m, nn.modules.batchnorm._BatchNorm):
            reset()
        elif isinstance(m, nn.modules.batchnorm._BatchNorm) and m.affine:
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


def _tensors(module: nn.Module, prefix: str) -> dict[str, torch.Tensor]:
    """A module's parameters and buffers by their dotted names in the model."""
    named = [*module.named_parameters(prefix, recurse=True), *module.named_buffers(prefix, recurse=True)]
    return {name: t for name, t in named}


class RandomizedDepths:
    """One copy of a model that moves between randomisation depths: every depth of a run from one model.

    The re-initialised weights of each block are drawn once, cumulatively and seeded exactly as
    :func:`randomized_copy` draws them, so :meth:`at` gives the same weights as ``randomized_copy(model, depth,
    seed, blocks)``. Moving up a depth loads one block's weights; moving down restores the original weights of the
    randomised blocks first. Methods built once for :attr:`model` explain every depth (their hooks and layers are
    the copy's own modules, whose weights change in place).

    Args:
        model: The model (not modified).
        blocks: The block order (default: :func:`randomization_blocks`'s ``"weights"`` list).
        seed: Seed of the re-initialisation.

    Attributes:
        model: The copy (at depth :attr:`depth`).
        depth: Its current depth.

    Example:
        >>> depths = RandomizedDepths(torchvision.models.resnet18(), seed=0)  # doctest: +SKIP
        >>> depths.at(3) is depths.model                                       # doctest: +SKIP
        True
    """

    def __init__(self, model: nn.Module, blocks: Sequence[str] | None = None, seed: int = 0) -> None:
        self.blocks = list(blocks) if blocks is not None else randomization_blocks(model)
        self.model = copy.deepcopy(model)
        modules = dict(self.model.named_modules())
        missing = [b for b in self.blocks if b not in modules]
        if missing:
            raise ValueError(f"blocks: {type(model).__name__} has no module(s) {missing}")
        self._live = {name: t for b in self.blocks for name, t in _tensors(modules[b], b).items()}
        self._original = {name: t.detach().clone() for name, t in self._live.items()}
        self._drawn: list[dict[str, torch.Tensor]] = []
        with torch.no_grad(), torch.random.fork_rng(devices=[]):
            for i, b in enumerate(self.blocks):  # cumulatively, as randomized_copy re-initialises them
                _reinitialize(modules[b], seed * 100_003 + i)
                self._drawn.append({name: t.detach().clone() for name, t in _tensors(modules[b], b).items()})
        self.depth = len(self.blocks)

    def at(self, depth: int) -> nn.Module:
        """The copy with its ``depth`` top blocks re-initialised (moved there in place), i.e. :attr:`model`.

        Raises:
            ValueError: If ``depth`` exceeds the number of blocks.
        """
        if not 0 <= depth <= len(self.blocks):
            raise ValueError(f"depth must lie in [0, {len(self.blocks)}], got {depth}")
        with torch.no_grad():
            if depth < self.depth:
                for name, t in self._original.items():
                    self._live[name].copy_(t)
                self.depth = 0
            for i in range(self.depth, depth):  # depth d + 1: depth d's model plus one more block
                for name, t in self._drawn[i].items():
                    self._live[name].copy_(t)
        self.depth = depth
        return self.model
