"""Attention capture on stock Vision Transformers (timm, torchvision, Hugging Face), for any batch and grid.

:func:`trace_attention` records, for every block and every forward pass inside the context, the
post-softmax attention ``A [B, heads, N, N]`` (a node of the autograd graph, so class gradients ``dA`` can
be taken with respect to it), the block input and the outputs of its attention and MLP branches. timm's
fused attention is switched off only inside the context; torchvision's encoder blocks run a
mathematically identical attention that exposes its weights; Hugging Face ViTs and DeiTs (``kind="hf"``,
wrapped in :class:`~attrdist.models.hf.HFClassifier`) run their own eager attention, which returns its
weights. Everything is restored on exit, also after an error.

The three libraries name their layers differently (and ``transformers`` 4 and 5 differ too); submodules are
reached by dotted name (``nn.Module.get_submodule``, typed), and the few plain attributes read here are
described by small protocols.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol, TypeGuard, cast

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.hooks import RemovableHandle

from .hf import hf_model

if TYPE_CHECKING:
    from timm.models.vision_transformer import VisionTransformer as TimmViT
    from torchvision.models.vision_transformer import VisionTransformer as TvViT

__all__ = ["BlockFlows", "BlockParts", "BlockTrace", "ViTInfo", "architecture_of", "block_flows", "block_parts",
           "fixed_input_size", "head_parts", "is_vit", "tokens_to_grid", "trace_attention", "vit_info"]


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

    kind: str  # "timm", "torchvision" or "hf"
    prefix: int
    patch: tuple[int, int]
    blocks: list[nn.Module] = field(compare=False)


class _HFConfig(Protocol):
    """The parts of a ``transformers`` ViT/DeiT config read here."""

    image_size: int | Sequence[int]
    patch_size: int | Sequence[int]
    _attn_implementation: str | None


class _HFModel(Protocol):
    """The parts of a ``transformers`` ``PreTrainedModel`` read here."""

    config: _HFConfig
    base_model: nn.Module


class _Heads(Protocol):
    """An attention module's head count (timm ``Attention``, ``nn.MultiheadAttention``, ``transformers`` 5)."""

    num_heads: int


class _TimmAttention(Protocol):
    """timm's ``Attention``: the fused-kernel switch and the query scale."""

    fused_attn: bool
    scale: float


def _sub(module: nn.Module, path: str) -> nn.Module:
    """The submodule at a dotted ``path`` (``AttributeError`` if there is none)."""
    return module.get_submodule(path)


def _linear(module: nn.Module, path: str) -> nn.Linear:
    """The ``nn.Linear`` at a dotted ``path``."""
    found = module.get_submodule(path)
    if not isinstance(found, nn.Linear):
        raise TypeError(f"{type(module).__name__}.{path} is a {type(found).__name__}, not a linear layer")
    return found


def _pair(value: int | Sequence[int]) -> tuple[int, int]:
    """``(h, w)`` of a size written as one int or a pair."""
    return (int(value[0]), int(value[1])) if isinstance(value, Sequence) else (int(value), int(value))


def _hf_config(inner: nn.Module) -> _HFConfig:
    return cast(_HFModel, inner).config


def _timm_vit(model: nn.Module) -> TypeGuard[TimmViT]:
    try:
        from timm.models.vision_transformer import VisionTransformer
    except ImportError:
        return False
    return isinstance(model, VisionTransformer)


def _tv_vit(model: nn.Module) -> TypeGuard[TvViT]:
    from torchvision.models.vision_transformer import VisionTransformer

    return isinstance(model, VisionTransformer)


def _hf_vit(model: nn.Module) -> nn.Module | None:
    """The ``transformers`` ViT or DeiT inside an :class:`~attrdist.models.hf.HFClassifier`, else ``None``."""
    inner = hf_model(model)
    bases = ("ViTPreTrainedModel", "DeiTPreTrainedModel")
    return inner if inner is not None and any(c.__name__ in bases for c in type(inner).__mro__) else None


def is_vit(model: nn.Module) -> bool:
    """Whether ``model`` is a timm or torchvision VisionTransformer, or a wrapped Hugging Face ViT or DeiT."""
    return _timm_vit(model) or _tv_vit(model) or _hf_vit(model) is not None


def architecture_of(model: nn.Module) -> str:
    """``"vit"`` for timm and torchvision Vision Transformers, ``"cnn"`` for every other model."""
    return "vit" if is_vit(model) else "cnn"


def fixed_input_size(model: nn.Module) -> tuple[int, int] | None:
    """The ``(height, width)`` a ViT requires, or ``None`` when the model takes any size (CNNs, dynamic ViTs)."""
    if _tv_vit(model):
        return (int(model.image_size), int(model.image_size))
    if _timm_vit(model) and not getattr(model, "dynamic_img_size", False):
        size = model.patch_embed.img_size
        return (int(size[0]), int(size[1])) if size is not None else None
    inner = _hf_vit(model)
    if inner is not None:
        return _pair(_hf_config(inner).image_size)
    return None


def _hf_info(inner: nn.Module) -> ViTInfo:
    backbone = cast(_HFModel, inner).base_model
    layers = _sub(backbone, "layers" if hasattr(backbone, "layers") else "encoder.layer")  # transformers 5 / 4
    prefix = 1 + int(getattr(_sub(backbone, "embeddings"), "distillation_token", None) is not None)  # DeiT: 2
    return ViTInfo("hf", prefix, _pair(_hf_config(inner).patch_size), list(cast(nn.ModuleList, layers)))


def vit_info(model: nn.Module) -> ViTInfo:
    """Prefix tokens, patch size and blocks of a stock ViT.

    Raises:
        TypeError: If the model is not a timm or torchvision VisionTransformer.
    """
    if _timm_vit(model):
        p = model.patch_embed.patch_size
        return ViTInfo("timm", int(model.num_prefix_tokens), (int(p[0]), int(p[1])), list(model.blocks))
    if _tv_vit(model):
        patch = int(model.patch_size)
        return ViTInfo("torchvision", 1, (patch, patch), list(model.encoder.layers))
    inner = _hf_vit(model)
    if inner is not None:
        return _hf_info(inner)
    raise TypeError(f"{type(model).__name__} is not a timm, torchvision or Hugging Face VisionTransformer")


def tokens_to_grid(tokens: Tensor, info: ViTInfo, size: tuple[int, int]) -> Tensor:
    """Patch tokens ``[..., N, D]`` (prefix tokens dropped) as a grid ``[..., D, h, w]`` for input ``size``."""
    h, w = size[0] // info.patch[0], size[1] // info.patch[1]
    patches = tokens[..., info.prefix :, :]
    if patches.shape[-2] != h * w:
        raise ValueError(f"{patches.shape[-2]} patch tokens do not form the {h}x{w} grid of a {size} input")
    return patches.transpose(-1, -2).reshape(*patches.shape[:-2], patches.shape[-1], h, w)


@dataclass
class BlockFlows:
    """Every intermediate of one block, computed explicitly from its input (see :func:`block_flows`).

    ``x_in -> norm1 -> (q, k, v) -> attn -> proj_in -> attn_branch``; ``mid = x_in + attn_branch``;
    ``mid -> norm2 -> fc1 -> fc2_in -> mlp_branch``; ``out = mid + mlp_branch``. ``q, k, v`` are
    ``[B, heads, N, d]`` (``q`` unscaled), ``attn`` is post-softmax ``[B, heads, N, N]``.
    """

    x_in: Tensor
    norm1: Tensor
    q: Tensor
    k: Tensor
    v: Tensor
    attn: Tensor
    proj_in: Tensor
    attn_branch: Tensor
    mid: Tensor
    norm2: Tensor
    fc2_in: Tensor
    mlp_branch: Tensor
    out: Tensor


@dataclass(frozen=True)
class BlockParts:
    """The linear maps of a standard pre-norm ViT block (as used by :func:`block_flows` and T-LRP)."""

    qkv_weight: Tensor  # [3 D, D], rows ordered (q|k|v, head, dim)
    proj: nn.Linear
    fc1: nn.Linear
    fc2: nn.Linear
    heads: int


class _HFLayer(NamedTuple):
    """The modules of a Hugging Face ``ViTLayer``/``DeiTLayer`` (transformers 5 and 4 name them differently)."""

    q: nn.Linear
    k: nn.Linear
    v: nn.Linear
    o: nn.Linear
    fc1: nn.Linear
    act: Callable[[Tensor], Tensor]
    fc2: nn.Linear
    heads: int


def _heads(attention: nn.Module, name: str) -> int:
    """An attention module's head count, stored under ``name``."""
    count: int = getattr(attention, name)
    return int(count)


def _callable(module: nn.Module, path: str) -> Callable[[Tensor], Tensor]:
    """The function or module at a dotted ``path`` (an activation: a module, or a plain function in a config)."""
    parent, _, name = path.rpartition(".")
    found = getattr(_sub(module, parent) if parent else module, name)
    if not callable(found):
        raise TypeError(f"{type(module).__name__}.{path} is not callable")
    return cast(Callable[[Tensor], Tensor], found)


def _hf_layer(block: nn.Module) -> _HFLayer:
    at = _sub(block, "attention")
    if hasattr(at, "q_proj"):  # transformers >= 5
        return _HFLayer(_linear(at, "q_proj"), _linear(at, "k_proj"), _linear(at, "v_proj"), _linear(at, "o_proj"),
                        _linear(block, "mlp.fc1"), _callable(block, "mlp.activation_fn"), _linear(block, "mlp.fc2"),
                        _heads(at, "num_attention_heads"))
    # transformers 4: attention.attention.{query,key,value}, attention.output.dense, ...
    return _HFLayer(_linear(at, "attention.query"), _linear(at, "attention.key"), _linear(at, "attention.value"),
                    _linear(at, "output.dense"), _linear(block, "intermediate.dense"),
                    _callable(block, "intermediate.intermediate_act_fn"), _linear(block, "output.dense"),
                    _heads(_sub(at, "attention"), "num_attention_heads"))


def _tv_parts(block: nn.Module) -> BlockParts:
    mha = _sub(block, "self_attention")
    if not isinstance(mha, nn.MultiheadAttention) or mha.in_proj_weight is None:
        raise TypeError(f"{type(block).__name__}.self_attention is not a packed nn.MultiheadAttention")
    return BlockParts(mha.in_proj_weight, _linear(mha, "out_proj"), _linear(block, "mlp.0"), _linear(block, "mlp.3"),
                      int(mha.num_heads))


def _timm_parts(block: nn.Module) -> BlockParts:
    attn, mlp = getattr(block, "attn", None), getattr(block, "mlp", None)
    qkv, proj = getattr(attn, "qkv", None), getattr(attn, "proj", None)
    fc1, fc2 = getattr(mlp, "fc1", None), getattr(mlp, "fc2", None)
    if (not isinstance(qkv, nn.Linear) or not isinstance(proj, nn.Linear) or not isinstance(fc1, nn.Linear)
            or not isinstance(fc2, nn.Linear) or getattr(attn, "gate", None) is not None):
        raise TypeError(f"{type(block).__name__} is not a standard ViT block (attn.qkv, attn.proj, mlp.fc1, "
                        "mlp.fc2 linear, no attention gate)")
    return BlockParts(qkv.weight, proj, fc1, fc2, int(cast(_Heads, attn).num_heads))


def block_parts(block: nn.Module, kind: str) -> BlockParts:
    """The linear maps of a timm ``Block``, torchvision ``EncoderBlock`` or Hugging Face ``ViTLayer``.

    Raises:
        TypeError: For block designs other than the standard pre-norm block (gated or parallel
            attention, GLU MLPs, ...), naming what is unsupported.
    """
    if kind == "torchvision":
        return _tv_parts(block)
    if kind == "hf":
        hl = _hf_layer(block)
        return BlockParts(torch.cat([hl.q.weight, hl.k.weight, hl.v.weight]), hl.o, hl.fc1, hl.fc2, hl.heads)
    return _timm_parts(block)


def _tv_flows(block: nn.Module, parts: BlockParts, x_in: Tensor) -> BlockFlows:
    b, n, d = x_in.shape
    heads = parts.heads
    mha = cast(nn.MultiheadAttention, _sub(block, "self_attention"))
    h1 = _sub(block, "ln_1")(x_in)
    q, k, v = (t.reshape(b, n, heads, d // heads).transpose(1, 2)
               for t in F.linear(h1, parts.qkv_weight, mha.in_proj_bias).chunk(3, dim=-1))
    attn = ((q * (d // heads) ** -0.5) @ k.transpose(-2, -1)).softmax(-1)
    proj_in = (attn @ v).transpose(1, 2).reshape(b, n, d)
    attn_branch = _sub(block, "dropout")(mha.out_proj(proj_in))
    mid = attn_branch + x_in
    h2 = _sub(block, "ln_2")(mid)
    fc2_in = _sub(block, "mlp.2")(_sub(block, "mlp.1")(_sub(block, "mlp.0")(h2)))
    mlp_branch = _sub(block, "mlp.4")(_sub(block, "mlp.3")(fc2_in))
    return BlockFlows(x_in, h1, q, k, v, attn, proj_in, attn_branch, mid, h2, fc2_in, mlp_branch, mid + mlp_branch)


def _hf_flows(block: nn.Module, parts: BlockParts, x_in: Tensor) -> BlockFlows:
    b, n, _ = x_in.shape
    heads = parts.heads
    hl = _hf_layer(block)
    drop = getattr(block, "dropout", None) or nn.Identity()  # transformers 4 keeps it inside (identity in eval)
    h1 = _sub(block, "layernorm_before")(x_in)
    q, k, v = (lin(h1).reshape(b, n, heads, -1).transpose(1, 2) for lin in (hl.q, hl.k, hl.v))
    attn = ((q * q.shape[-1] ** -0.5) @ k.transpose(-2, -1)).softmax(-1)
    proj_in = (attn @ v).transpose(1, 2).reshape(b, n, -1)
    attn_branch = drop(hl.o(proj_in))
    mid = attn_branch + x_in
    h2 = _sub(block, "layernorm_after")(mid)
    fc2_in = hl.act(hl.fc1(h2))
    mlp_branch = drop(hl.fc2(fc2_in))
    return BlockFlows(x_in, h1, q, k, v, attn, proj_in, attn_branch, mid, h2, fc2_in, mlp_branch, mid + mlp_branch)


def _timm_flows(block: nn.Module, parts: BlockParts, x_in: Tensor) -> BlockFlows:
    b, n, _ = x_in.shape
    at = _sub(block, "attn")
    h1 = _sub(block, "norm1")(x_in)
    qkv = _sub(at, "qkv")(h1).reshape(b, n, 3, parts.heads, -1).permute(2, 0, 3, 1, 4)
    q, k, v = _sub(at, "q_norm")(qkv[0]), _sub(at, "k_norm")(qkv[1]), qkv[2]
    attn = _sub(at, "attn_drop")(((q * cast(_TimmAttention, at).scale) @ k.transpose(-2, -1)).softmax(-1))
    proj_in = _sub(at, "norm")((attn @ v).transpose(1, 2).reshape(b, n, -1))
    attn_branch = _sub(block, "drop_path1")(_sub(block, "ls1")(_sub(at, "proj_drop")(_sub(at, "proj")(proj_in))))
    mid = x_in + attn_branch
    h2 = _sub(block, "norm2")(mid)
    mlp = _sub(block, "mlp")
    fc2_in = _sub(mlp, "norm")(_sub(mlp, "drop1")(_sub(mlp, "act")(_sub(mlp, "fc1")(h2))))
    mlp_branch = _sub(block, "drop_path2")(_sub(block, "ls2")(_sub(mlp, "drop2")(_sub(mlp, "fc2")(fc2_in))))
    return BlockFlows(x_in, h1, q, k, v, attn, proj_in, attn_branch, mid, h2, fc2_in, mlp_branch, mid + mlp_branch)


#: ``(block, parts, x_in) -> BlockFlows`` per ViT kind.
_FLOWS: dict[str, Callable[[nn.Module, BlockParts, Tensor], BlockFlows]] = {
    "torchvision": _tv_flows, "hf": _hf_flows, "timm": _timm_flows}


def block_flows(block: nn.Module, kind: str, x_in: Tensor) -> BlockFlows:
    """Run one block explicitly (same modules, same order as its own forward) and keep every flow.

    Args:
        block: A timm ``Block``, torchvision ``EncoderBlock`` or Hugging Face ``ViTLayer``.
        kind: ``"timm"``, ``"torchvision"`` or ``"hf"`` (see :class:`ViTInfo`).
        x_in: The block input ``[B, N, D]``.

    Returns:
        Every intermediate of the block.
    """
    return _FLOWS.get(kind, _timm_flows)(block, block_parts(block, kind), x_in)


def head_parts(model: nn.Module, info: ViTInfo) -> tuple[nn.Module, list[nn.Module]]:
    """The final token norm and the modules that map the CLS token to the logits, in order.

    Only linear layers and element-wise modules (norms, dropout, torchvision's ``pre_logits`` ``Tanh``)
    may make up the head.

    Raises:
        TypeError: If the model does not classify its class token with such a head.
    """
    if info.kind == "torchvision":
        return _sub(model, "encoder.ln"), list(cast(nn.Sequential, _sub(model, "heads")))
    if info.kind == "hf":
        inner = _sub(model, "hf")
        classifier = getattr(inner, "classifier", None)
        if not isinstance(classifier, nn.Linear):
            raise TypeError(f"this needs a ViT that classifies its class token with one linear layer, got "
                            f"{type(inner).__name__} (a DeiT with teacher averages two heads)")
        return _sub(cast(_HFModel, inner).base_model, "layernorm"), [classifier]
    if not _timm_vit(model):
        raise TypeError(f"{type(model).__name__} is not a timm VisionTransformer")
    if model.attn_pool is not None or model.global_pool != "token" or not model.has_class_token:
        raise TypeError("this needs a ViT that classifies its class token (global_pool='token'), got "
                        f"global_pool={model.global_pool!r}")
    if not isinstance(model.head, nn.Linear):
        raise TypeError(f"this needs a linear classifier head, got {type(model.head).__name__}")
    return model.norm, [model.fc_norm, model.head_drop, model.head]


def _tv_hooks(block: nn.Module, trace: BlockTrace, restore: list[Callable[[], None]]) -> None:
    """Run a torchvision encoder block explicitly (:func:`block_flows`), recording its flows."""

    def forward(inp: Tensor) -> Tensor:
        flows = block_flows(block, "torchvision", inp)
        trace.x_in, trace.attn, trace.mlp_out = inp, flows.attn, flows.mlp_branch
        trace.attn_out = flows.attn_branch
        return flows.out

    block.forward = forward
    restore.append(lambda: block.__dict__.pop("forward", None))


def _hf_hooks(block: nn.Module, tr: BlockTrace, handles: list[RemovableHandle]) -> None:
    """Record a Hugging Face ViT layer: its input, attention weights and branch outputs (before dropout)."""
    hl = _hf_layer(block)

    def on_block(mod: nn.Module, args: tuple[Tensor, ...], kwargs: dict[str, Any]) -> None:
        tr.x_in = args[0] if args else kwargs["hidden_states"]

    def on_attention(mod: nn.Module, args: tuple[Tensor, ...], out: tuple[Tensor | None, ...]) -> None:
        if len(out) < 2 or out[1] is None:
            raise RuntimeError(f"{type(mod).__name__} returned no attention weights (eager attention is needed)")
        tr.attn = out[1]

    def on_o(mod: nn.Module, args: tuple[Tensor, ...], out: Tensor) -> None:
        tr.attn_out = out

    def on_fc2(mod: nn.Module, args: tuple[Tensor, ...], out: Tensor) -> None:
        tr.mlp_out = out

    handles.append(block.register_forward_pre_hook(on_block, with_kwargs=True))
    handles.append(_sub(block, "attention").register_forward_hook(on_attention))
    handles.append(hl.o.register_forward_hook(on_o))
    handles.append(hl.fc2.register_forward_hook(on_fc2))


def _timm_hooks(block: nn.Module, tr: BlockTrace, handles: list[RemovableHandle],
                restore: list[Callable[[], None]]) -> None:
    """Record a timm block with its fused attention switched off (restored on exit)."""
    attn_mod = _sub(block, "attn")
    switch = cast(_TimmAttention, attn_mod)
    fused = getattr(attn_mod, "fused_attn", False)
    switch.fused_attn = False

    def undo() -> None:
        switch.fused_attn = fused

    def on_attn(mod: nn.Module, args: tuple[Tensor, ...], out: Tensor) -> Tensor:
        tr.attn = out
        return out.clone()

    def on_block(mod: nn.Module, args: tuple[Tensor, ...]) -> None:
        tr.x_in = args[0]

    def on_attn_out(mod: nn.Module, args: tuple[Tensor, ...], out: Tensor) -> None:
        tr.attn_out = out

    def on_mlp(mod: nn.Module, args: tuple[Tensor, ...], out: Tensor) -> None:
        tr.mlp_out = out

    restore.append(undo)
    handles.append(_sub(attn_mod, "attn_drop").register_forward_hook(on_attn))
    handles.append(block.register_forward_pre_hook(on_block))
    handles.append(attn_mod.register_forward_hook(on_attn_out))
    handles.append(_sub(block, "mlp").register_forward_hook(on_mlp))


def _hf_eager(inner: nn.Module) -> Callable[[], None]:
    """Switch a ``transformers`` model to its eager attention (which returns the weights); the undo function."""
    config = _hf_config(inner)
    old = config._attn_implementation
    if old == "eager":
        return lambda: None
    setter: Callable[[str | None], None] | None = getattr(inner, "set_attn_implementation", None)
    if setter is not None:
        setter("eager")
        return lambda: setter(old)
    config._attn_implementation = "eager"

    def undo() -> None:
        config._attn_implementation = old

    return undo


@contextlib.contextmanager
def trace_attention(model: nn.Module, blocks: slice | None = None) -> Iterator[list[BlockTrace]]:
    """Record attention and token flows of every block during forward passes inside the context.

    Args:
        model: A timm or torchvision VisionTransformer, or a wrapped Hugging Face ViT or DeiT.
        blocks: Only these blocks are traced (``slice(-1, None)``: the last); the others keep their fused
            attention and their traces stay empty.

    Yields:
        One :class:`BlockTrace` per block, filled by each forward pass.
    """
    info = vit_info(model)
    traces = [BlockTrace() for _ in info.blocks]
    traced = set(range(len(info.blocks))[blocks] if blocks is not None else range(len(info.blocks)))
    handles: list[RemovableHandle] = []
    restore: list[Callable[[], None]] = []
    try:
        for i, (block, tr) in enumerate(zip(info.blocks, traces, strict=True)):
            if i not in traced:
                continue
            if info.kind == "timm":
                _timm_hooks(block, tr, handles, restore)
            elif info.kind == "hf":
                _hf_hooks(block, tr, handles)
            else:
                _tv_hooks(block, tr, restore)
        if info.kind == "hf" and traced:
            restore.append(_hf_eager(_sub(model, "hf")))
        yield traces
    finally:
        for h in handles:
            h.remove()
        for undo in restore:
            undo()
