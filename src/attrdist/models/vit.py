"""Attention capture on stock Vision Transformers (timm and torchvision), for any batch and grid.

:func:`trace_attention` records, for every block and every forward pass inside the context, the
post-softmax attention ``A [B, heads, N, N]`` (a node of the autograd graph, so class gradients ``dA`` can
be taken with respect to it), the block input and the outputs of its attention and MLP branches. timm's
fused attention is switched off only inside the context; torchvision's encoder blocks run a
mathematically identical attention that exposes its weights. Everything is restored on exit, also after
an error.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["BlockTrace", "ViTInfo", "is_vit", "trace_attention", "tokens_to_grid", "vit_info"]


@dataclass
class BlockTrace:
    """What one block computed in the last forward pass."""

    attn: Tensor | None = None  # post-softmax attention [B, heads, N, N]
    x_in: Tensor | None = None  # block input [B, N, D]
    attn_out: Tensor | None = None  # attention branch output [B, N, D]
    mlp_out: Tensor | None = None  # MLP branch output [B, N, D]


@dataclass(frozen=True)
class ViTInfo:
    """Shape facts of a ViT: prefix tokens (CLS, registers) and patch size."""

    kind: str  # "timm" or "torchvision"
    prefix: int
    patch: tuple[int, int]
    blocks: list[nn.Module] = field(compare=False)


def _timm_vit(model: nn.Module) -> bool:
    try:
        from timm.models.vision_transformer import VisionTransformer
    except ImportError:
        return False
    return isinstance(model, VisionTransformer)


def _tv_vit(model: nn.Module) -> bool:
    from torchvision.models.vision_transformer import VisionTransformer

    return isinstance(model, VisionTransformer)


def is_vit(model: nn.Module) -> bool:
    """Whether ``model`` is a timm or torchvision VisionTransformer."""
    return _timm_vit(model) or _tv_vit(model)


def vit_info(model: nn.Module) -> ViTInfo:
    """Prefix tokens, patch size and blocks of a stock ViT.

    Raises:
        TypeError: If the model is not a timm or torchvision VisionTransformer.
    """
    if _timm_vit(model):
        p = model.patch_embed.patch_size
        return ViTInfo("timm", int(model.num_prefix_tokens), (int(p[0]), int(p[1])), list(model.blocks))
    if _tv_vit(model):
        p = int(model.patch_size)
        return ViTInfo("torchvision", 1, (p, p), list(model.encoder.layers))
    raise TypeError(f"{type(model).__name__} is not a timm or torchvision VisionTransformer")


def tokens_to_grid(tokens: Tensor, info: ViTInfo, size: tuple[int, int]) -> Tensor:
    """Patch tokens ``[..., N, D]`` (prefix tokens dropped) as a grid ``[..., D, h, w]`` for input ``size``."""
    h, w = size[0] // info.patch[0], size[1] // info.patch[1]
    patches = tokens[..., info.prefix :, :]
    if patches.shape[-2] != h * w:
        raise ValueError(f"{patches.shape[-2]} patch tokens do not form the {h}x{w} grid of a {size} input")
    return patches.transpose(-1, -2).reshape(*patches.shape[:-2], patches.shape[-1], h, w)


def _tv_block_forward(block: nn.Module, trace: BlockTrace) -> Callable[[Tensor], Tensor]:
    mha: nn.MultiheadAttention = block.self_attention

    def forward(inp: Tensor) -> Tensor:
        trace.x_in = inp
        x = block.ln_1(inp)
        b, n, d = x.shape
        heads = mha.num_heads
        q, k, v = F.linear(x, mha.in_proj_weight, mha.in_proj_bias).chunk(3, dim=-1)
        q, k, v = (t.reshape(b, n, heads, d // heads).transpose(1, 2) for t in (q, k, v))
        attn = ((q * (d // heads) ** -0.5) @ k.transpose(-2, -1)).softmax(-1)
        trace.attn = attn
        out = (attn @ v).transpose(1, 2).reshape(b, n, d)
        out = mha.out_proj(out)
        trace.attn_out = out
        x = block.dropout(out) + inp
        y = block.mlp(block.ln_2(x))
        trace.mlp_out = y
        return x + y

    return forward


@contextlib.contextmanager
def trace_attention(model: nn.Module) -> Iterator[list[BlockTrace]]:
    """Record attention and token flows of every block during forward passes inside the context.

    Args:
        model: A timm or torchvision VisionTransformer.

    Yields:
        One :class:`BlockTrace` per block, filled by each forward pass.
    """
    info = vit_info(model)
    traces = [BlockTrace() for _ in info.blocks]
    handles: list = []
    restore: list[Callable[[], None]] = []
    try:
        for block, tr in zip(info.blocks, traces, strict=True):
            if info.kind == "timm":
                attn_mod = block.attn
                fused = getattr(attn_mod, "fused_attn", False)
                attn_mod.fused_attn = False
                restore.append(lambda m=attn_mod, f=fused: setattr(m, "fused_attn", f))

                def on_attn(mod: nn.Module, args: tuple, out: Tensor, tr: BlockTrace = tr) -> Tensor:
                    tr.attn = out
                    return out.clone()

                handles.append(attn_mod.attn_drop.register_forward_hook(on_attn))
                handles.append(block.register_forward_pre_hook(
                    lambda mod, args, tr=tr: setattr(tr, "x_in", args[0])))
                handles.append(attn_mod.register_forward_hook(
                    lambda mod, args, out, tr=tr: setattr(tr, "attn_out", out)))
                handles.append(block.mlp.register_forward_hook(
                    lambda mod, args, out, tr=tr: setattr(tr, "mlp_out", out)))
            else:
                block.forward = _tv_block_forward(block, tr)
                restore.append(lambda b=block: b.__dict__.pop("forward", None))
        yield traces
    finally:
        for h in handles:
            h.remove()
        for undo in restore:
            undo()
