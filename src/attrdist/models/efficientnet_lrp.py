"""The LRP canonizer of EfficientNet-Lite0 (imported when LRP runs on it: zennit is imported with it)."""
# mypy: disallow-subclassing-any=False
# (zennit ships no types: its canonizer bases, which the canonizers here extend, are ``Any`` to a checker)

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, Protocol, cast

import torch
from torch import Tensor, nn
from zennit.canonizers import AttributeCanonizer, Canonizer, CompositeCanonizer, MergeBatchNorm
from zennit.layer import Sum

__all__ = ["EfficientNetLiteCanonizer"]


class _GateTakesNone(torch.autograd.Function):
    """``x * gate`` whose backward hands the relevance arriving at the product to ``x`` unchanged.

    In LRP the squeeze-excitation gate is a constant scale of the signal ("signal takes all"): relevance
    is conserved through the product and none flows into the gate branch.
    """

    @staticmethod
    def forward(x: Tensor, gate: Tensor) -> Tensor:
        return x * gate

    @staticmethod
    def setup_context(ctx: object, inputs: tuple[Tensor, Tensor], output: Tensor) -> None:
        pass

    @staticmethod
    def backward(ctx: object, grad: Tensor) -> tuple[Tensor, None]:
        return grad, None


_Layer = Callable[[Tensor], Tensor]


class _BlockArgs(Protocol):
    expand_ratio: float
    stride: int | list[int]
    input_filters: int
    output_filters: int


class _MBConv(Protocol):
    """An ``efficientnet_lite_pytorch`` ``MBConvBlock`` with the canonizer's activation modules attached."""

    _block_args: _BlockArgs
    has_se: bool
    id_skip: bool
    _expand_conv: _Layer
    _bn0: _Layer
    _depthwise_conv: _Layer
    _bn1: _Layer
    _se_reduce: _Layer
    _se_expand: _Layer
    _project_conv: _Layer
    _bn2: _Layer
    canonizer_act_expand: _Layer
    canonizer_act_dw: _Layer
    canonizer_act_se: _Layer
    canonizer_sum: _Layer


class _Lite(Protocol):
    """An ``efficientnet_lite_pytorch`` ``EfficientNet`` with the canonizer's activation modules attached."""

    _conv_stem: _Layer
    _bn0: _Layer
    _blocks: Iterable[_Layer]
    _conv_head: _Layer
    _bn1: _Layer
    canonizer_act_stem: _Layer
    canonizer_act_head: _Layer


def _block_forward(self: _MBConv, inputs: Tensor, drop_connect_rate: float | None = None) -> Tensor:
    """MBConv forward with one activation module per use, a relevance-passing SE gate and a Sum for the skip."""
    x = inputs
    if self._block_args.expand_ratio != 1:
        x = self.canonizer_act_expand(self._bn0(self._expand_conv(inputs)))
    x = self.canonizer_act_dw(self._bn1(self._depthwise_conv(x)))
    if self.has_se:
        s = nn.functional.adaptive_avg_pool2d(x, 1)
        s = self._se_expand(self.canonizer_act_se(self._se_reduce(s)))
        x = cast(Tensor, _GateTakesNone.apply(x, torch.sigmoid(s)))
    x = self._bn2(self._project_conv(x))
    args = self._block_args
    if self.id_skip and args.stride == 1 and args.input_filters == args.output_filters:
        x = self.canonizer_sum(torch.stack([inputs, x], dim=-1))
    return x


def _extract_features(self: _Lite, inputs: Tensor) -> Tensor:
    """Stem, blocks and head with distinct activation modules for stem and head."""
    x = self.canonizer_act_stem(self._bn0(self._conv_stem(inputs)))
    for block in self._blocks:
        x = block(x)
    return self.canonizer_act_head(self._bn1(self._conv_head(x)))


def _act_like(module: nn.Module) -> nn.Module:
    act = module.get_submodule("_swish")
    return type(act)() if isinstance(act, nn.ReLU6 | nn.ReLU | nn.SiLU) else act


class _LiteBatchNorm(MergeBatchNorm):
    """Fold every (conv, bn) pair of EfficientNet-Lite, which its forward calls by attribute name.

    Zennit leaves the emptied BatchNorm computing ``x / sqrt(1 + eps)``; with this family's eps of 1e-3
    that drifts the logits by ~2% over 50 BatchNorms, so the emptied BatchNorm also gets ``eps = 0``
    (an exact identity) until the canonizer is removed.
    """

    def register(self, linears: list[nn.Module], batch_norm: nn.BatchNorm2d) -> None:
        """Merge, then make the BatchNorm an exact identity."""
        super().register(linears, batch_norm)
        self.eps = batch_norm.eps
        batch_norm.eps = 0.0

    def remove(self) -> None:
        """Undo the merge and restore eps."""
        super().remove()
        self.batch_norm.eps = self.eps

    PAIRS = (("_conv_stem", "_bn0"), ("_conv_head", "_bn1"), ("_expand_conv", "_bn0"),
             ("_depthwise_conv", "_bn1"), ("_project_conv", "_bn2"))

    def apply(self, root_module: nn.Module) -> list[Canonizer]:
        """Merge the pairs found in every sub-module."""
        instances: list[Canonizer] = []
        for module in root_module.modules():
            for conv, bn in self.PAIRS:
                c, b = getattr(module, conv, None), getattr(module, bn, None)
                if isinstance(c, nn.Conv2d) and isinstance(b, nn.BatchNorm2d):
                    inst = _LiteBatchNorm()
                    inst.register([c], b)
                    instances.append(inst)
        return instances


def _attribute_map(name: str, module: nn.Module) -> dict[str, Any] | None:
    cls = type(module).__name__
    if cls == "MBConvBlock":
        return {
            "forward": _block_forward.__get__(module),
            "canonizer_act_expand": _act_like(module),
            "canonizer_act_dw": _act_like(module),
            "canonizer_act_se": _act_like(module),
            "canonizer_sum": Sum(),
        }
    if cls == "EfficientNet" and hasattr(module, "_blocks"):
        return {
            "extract_features": _extract_features.__get__(module),
            "canonizer_act_stem": _act_like(module),
            "canonizer_act_head": _act_like(module),
        }
    return None


class EfficientNetLiteCanonizer(CompositeCanonizer):
    """Canonizer for ``efficientnet_lite_pytorch.EfficientNet``.

    Folds each BatchNorm into its convolution (the model calls them by attribute, so Zennit's sequential
    merging finds none), routes residual additions through a Zennit ``Sum`` module, gives every use of
    the shared ReLU6 its own module, and lets relevance pass the squeeze-excitation product
    to the signal unchanged (none to the gate).
    """

    def __init__(self) -> None:
        super().__init__((_LiteBatchNorm(), AttributeCanonizer(_attribute_map)))
