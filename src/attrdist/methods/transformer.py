"""Attention-based attribution for stock Vision Transformers (timm, torchvision), batched over classes.

All methods read the CLS row of a token-to-token relevance matrix built from the post-softmax attention
``A`` of every block and, where class-specific, its class gradients ``dA`` (one forward pass, then the K
class gradients of all blocks' attention in one batched VJP). Maps are on the patch grid, upsampled to
the input (``resolution="native"`` keeps the grid); never min-max normalised.

Reference-code bugs fixed here: Grad-Rollout's row normalisation keeps dims, its gradients are in block
order and it discards per sample; Bi-attn's head weights are normalised per sample (the reference mixes
the batch into the heads).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Literal, NamedTuple, Unpack

import torch
from torch import Tensor, nn

from ..classes import ClassSet
from ..models.vit import BlockTrace, block_flows, head_parts, trace_attention, vit_info
from .base import Attributor, MethodOptions, register_method

__all__ = ["AttentionGradCAM", "AttentionOptions", "AttentionRollout", "BiAttn", "GAE", "GradRollout", "InFlow",
           "TAttn"]


class AttentionOptions(MethodOptions, total=False):
    """The keyword options every attention method passes on to :class:`_AttentionMethod` (``**kwargs``)."""

    resolution: Literal["input", "native"]


@dataclass(frozen=True)
class _Trace:
    """What one block computed in the traced forward pass (:class:`~attrdist.models.vit.BlockTrace`, filled)."""

    attn: Tensor  # post-softmax attention [B, heads, N, N]
    x_in: Tensor  # block input [B, N, D]
    attn_out: Tensor  # attention branch output [B, N, D]
    mlp_out: Tensor  # MLP branch output [B, N, D]

    @classmethod
    def of(cls, trace: BlockTrace) -> _Trace:
        """The filled trace of a block the forward pass ran.

        Raises:
            RuntimeError: If the block recorded nothing (the forward pass did not reach it).
        """
        if trace.attn is None or trace.x_in is None or trace.attn_out is None or trace.mlp_out is None:
            raise RuntimeError("a ViT block recorded nothing in the traced forward pass (did the model skip it?)")
        return cls(trace.attn, trace.x_in, trace.attn_out, trace.mlp_out)


class _Traced(NamedTuple):
    """One traced forward pass (:meth:`_AttentionMethod._traced`)."""

    traces: list[_Trace]  # every block's
    logits: Tensor  # [B, num_classes], detached
    classes: Tensor  # [B, K]
    grads: list[Tensor]  # the K class gradients of the attention of blocks start:, each [K, B, heads, N, N]


class _AttentionMethod(Attributor):
    """Base: trace the blocks in one forward pass, then turn attention (and gradients) into maps.

    Only for Vision Transformers (``applies_to = {"vit"}``).

    Args:
        model: A timm or torchvision VisionTransformer.
        resolution: ``"input"`` (bilinear upsampling of the patch grid) or ``"native"``.
        **kwargs: See :class:`Attributor`.
    """

    applies_to = frozenset({"vit"})

    def __init__(self, model: nn.Module, *, resolution: Literal["input", "native"] = "input",
                 **kwargs: Unpack[MethodOptions]) -> None:
        super().__init__(model, **kwargs)
        self.info = vit_info(model)
        self.resolution = resolution

    def _block_index(self, start_layer: int) -> int:
        """``start_layer`` checked against the model's blocks (the first block used).

        Args:
            start_layer: The block index the user asked for.

        Raises:
            ValueError: If ``start_layer`` is not a block index; the message says what to pass.
        """
        depth = len(self.info.blocks)
        if not 0 <= start_layer < depth:
            raise ValueError(f"start_layer must be a block index in [0, {depth}), got {start_layer}; pass "
                             f"start_layer=0..{depth - 1} (this ViT has {depth} blocks)")
        return start_layer

    def _traced(
        self, x: Tensor, classes: ClassSet | Tensor | None, target: Tensor | int | None, start: int = 0
    ) -> _Traced:
        """Forward once with the blocks traced; the K class gradients of the attention of blocks ``start:``.

        Returns:
            The traces, logits and classes, with ``grads[l]`` (block ``start + l``) of shape ``[K, B, heads, N, N]``.
        """
        xg = x.clone().requires_grad_(True)  # attention must be in the graph
        with trace_attention(self.model) as recorded:
            logits, cls = self._forward(xg, classes, target)
        traces = [_Trace.of(t) for t in recorded]
        grads = self._gradients(logits, cls, [t.attn for t in traces[start:]])
        return _Traced(traces, logits.detach(), cls, grads)

    def _to_maps(self, rows: Tensor, x: Tensor) -> Tensor:
        """CLS rows ``[B, K, N]`` -> maps ``[B, K, H, W]`` (patch tokens on their grid)."""
        h, w = x.shape[-2] // self.info.patch[0], x.shape[-1] // self.info.patch[1]
        maps = rows[..., self.info.prefix :].reshape(*rows.shape[:2], h, w)
        return maps if self.resolution == "native" else self._to_input_size(maps, tuple(x.shape[-2:]))


def _built(acc: Tensor | None) -> Tensor:
    """A product or sum accumulated over the blocks used (``None`` only if no block was: a bug)."""
    if acc is None:
        raise RuntimeError("no ViT block contributed to the map")
    return acc


def _eye_like(a: Tensor) -> Tensor:
    n = a.shape[-1]
    return torch.eye(n, dtype=a.dtype, device=a.device).expand_as(a)


def _row_normalize(m: Tensor) -> Tensor:
    return m / m.sum(-1, keepdim=True)


class AttentionGradCAM(_AttentionMethod):
    """Attention Grad-CAM of the last block: ``gradcam`` on a ViT (the VAR paper's ViT Grad-CAM rows).

    The class token's attention row over the patch tokens of the last block, ``A_h[CLS, patches]``, weighted
    per head by the mean of its class gradient over the patch tokens, averaged over heads, positive part:
    ``ReLU(mean_h(mean_j(dA_h[CLS, j]) * A_h[CLS, :]))`` (Chefer et al.'s ``generate_cam_attn``, the VAR
    authors' ``VitGradCam``), raw by default. Built by ``get_method("gradcam", vit)``; the token CAM on the
    last block's first norm is ``token_gradcam``.

    Args:
        model: A ViT.
        relu: Apply the positive part (default ``True``).
        minmax: Min-max scale each class map to [0, 1] on the patch grid before upsampling, as the VAR authors'
            ``VitGradCam`` does before their VAR wrapper (the paper configs' setting). Off by default: it gives
            every class the same range, so VAR no longer compares the classes' evidence (a constant map becomes 0).
        **kwargs: See :class:`_AttentionMethod`.
    """

    name = "gradcam"
    display_name = "Grad-CAM"
    summary = "attention Grad-CAM of the last block (CLS attention row x head-wise mean gradient), ViT"
    reference = "Selvaraju et al. ICCV 2017; attention form of Chefer, Gur, Wolf, CVPR 2021 (baseline)"

    def __init__(self, model: nn.Module, *, relu: bool = True, minmax: bool = False,
                 **kwargs: Unpack[AttentionOptions]) -> None:
        super().__init__(model, **kwargs)
        self.relu, self.minmax = relu, minmax

    def _attribute(
        self, x: Tensor, classes: ClassSet | Tensor | None, target: Tensor | int | None
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Compute the maps (see :meth:`Attributor._attribute`)."""
        last = len(self.info.blocks) - 1
        traces, logits, cls, grads = self._traced(x, classes, target, start=last)
        row = traces[last].attn.detach()[:, :, 0, :].unsqueeze(0)  # [1, B, h, N]: the class token's query row
        weights = grads[0][..., 0, self.info.prefix :].mean(-1, keepdim=True)  # [K, B, h, 1]
        cam = (weights * row).mean(2)  # [K, B, N]
        cam = cam.clamp(min=0) if self.relu else cam
        if self.minmax:
            patches = cam[..., self.info.prefix :]
            low, high = patches.amin(-1, keepdim=True), patches.amax(-1, keepdim=True)
            cam = torch.where(high > low, (cam - low) / (high - low).clamp(min=torch.finfo(cam.dtype).tiny), 0.0)
        return self._to_maps(cam.transpose(0, 1), x), cls, logits


@register_method("rollout")
class AttentionRollout(_AttentionMethod):
    """Attention rollout (Abnar & Zuidema, 2020): the product of ``(mean_h A + I)``, row-normalised.

    Class-agnostic: every class of the set gets the same map (VAR warns about it).

    Args:
        model: A ViT.
        start_layer: First block of the product.
        **kwargs: See :class:`_AttentionMethod`.
    """

    display_name = "Attention Rollout"
    summary = "attention rollout (class-agnostic), ViT"
    reference = "Abnar & Zuidema. Quantifying Attention Flow in Transformers. ACL 2020"
    class_agnostic = True

    def __init__(self, model: nn.Module, *, start_layer: int = 0, **kwargs: Unpack[AttentionOptions]) -> None:
        super().__init__(model, **kwargs)
        self.start_layer = self._block_index(start_layer)

    def _attribute(
        self, x: Tensor, classes: ClassSet | Tensor | None, target: Tensor | int | None
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Compute the maps (see :meth:`Attributor._attribute`)."""
        with torch.inference_mode(), trace_attention(self.model) as recorded:
            logits, cls = self._forward(x, classes, target)
        joint = None
        for tr in map(_Trace.of, recorded[self.start_layer :]):
            a = _row_normalize(tr.attn.mean(1) + _eye_like(tr.attn.mean(1)))
            joint = a if joint is None else a @ joint
        rows = _built(joint)[:, 0, :].unsqueeze(1).expand(-1, cls.shape[1], -1)
        return self._to_maps(rows, x), cls, logits


@register_method("grad_rollout")
class GradRollout(_AttentionMethod):
    """Gradient-weighted rollout (jacobgil/vit-explain).

    Per block ``mean_h (A * dA)+`` with the lowest ``discard_ratio`` of entries zeroed (the CLS-to-CLS entry
    kept), ``(. + I) / 2`` row-normalised, multiplied over blocks.

    Args:
        model: A ViT.
        discard_ratio: Fraction of the smallest fused entries set to 0 (default 0.9, the reference's).
        **kwargs: See :class:`_AttentionMethod`.
    """

    display_name = "Grad-Rollout"
    summary = "gradient-weighted attention rollout with discarding, ViT"
    reference = "Gildenblat. Exploring Explainability for Vision Transformers (vit-explain), 2020"

    def __init__(self, model: nn.Module, *, discard_ratio: float = 0.9, **kwargs: Unpack[AttentionOptions]) -> None:
        super().__init__(model, **kwargs)
        if not 0 <= discard_ratio < 1:
            raise ValueError(f"discard_ratio must lie in [0, 1), got {discard_ratio}")
        self.discard_ratio = discard_ratio

    def _attribute(
        self, x: Tensor, classes: ClassSet | Tensor | None, target: Tensor | int | None
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Compute the maps (see :meth:`Attributor._attribute`)."""
        traces, logits, cls, grads = self._traced(x, classes, target)
        joint = None
        for tr, g in zip(traces, grads, strict=True):
            fused = (tr.attn.detach().unsqueeze(0) * g).mean(2).clamp(min=0)  # [K, B, N, N]
            flat = fused.flatten(2)
            n_drop = int(flat.shape[-1] * self.discard_ratio)
            if n_drop:
                low = flat.topk(n_drop, dim=-1, largest=False).indices
                keep = torch.ones_like(flat, dtype=torch.bool).scatter(-1, low, False)
                keep[..., 0] = True  # the CLS -> CLS entry is never discarded
                flat = flat * keep
            a = _row_normalize((flat.view_as(fused) + _eye_like(fused)) / 2)
            joint = a if joint is None else a @ joint
        return self._to_maps(_built(joint)[..., 0, :].transpose(0, 1), x), cls, logits


@register_method("gae")
class GAE(_AttentionMethod):
    """Generic Attention-model Explainability (Chefer et al., ICCV 2021).

    ``R = I``, then for every block ``R += mean_h((dA_h * A_h)+) @ R``: the positive part is taken per head,
    before the head mean (Chefer et al.'s ``avg_heads``); no row normalisation.

    Args:
        model: A ViT.
        start_layer: First block used.
        **kwargs: See :class:`_AttentionMethod`.
    """

    display_name = "GAE"
    summary = "Chefer et al. ICCV'21 gradient x attention relevance propagation, ViT"
    reference = "Chefer, Gur, Wolf. Generic Attention-model Explainability. ICCV 2021"

    def __init__(self, model: nn.Module, *, start_layer: int = 0, **kwargs: Unpack[AttentionOptions]) -> None:
        super().__init__(model, **kwargs)
        self.start_layer = self._block_index(start_layer)

    def _attribute(
        self, x: Tensor, classes: ClassSet | Tensor | None, target: Tensor | int | None
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Compute the maps (see :meth:`Attributor._attribute`)."""
        traces, logits, cls, grads = self._traced(x, classes, target, start=self.start_layer)
        r = None
        for tr, g in zip(traces[self.start_layer :], grads, strict=True):
            cam = (g * tr.attn.detach().unsqueeze(0)).clamp(min=0).mean(2)  # [K, B, N, N]
            r = _eye_like(cam) if r is None else r
            r = r + cam @ r
        return self._to_maps(_built(r)[..., 0, :].transpose(0, 1), x), cls, logits


class _IGWeighted(_AttentionMethod):
    """Methods weighted by the integrated gradient of the last block's attention (Chen et al. 2023).

    ``W = mean_h (mean over alpha of dy/dA_L at alpha * x)+`` with ``steps`` values of alpha evenly from 0
    to 1 (the input is scaled, as in the reference), all steps in one forward pass per chunk.
    """

    #: Both references' default ``start_layer`` (``generate_ours``, ``transition_attention_maps``).
    reference_start_layer = 4

    def __init__(self, model: nn.Module, *, start_layer: int | None = None, steps: int = 20, chunk_size: int = 20,
                 **kwargs: Unpack[AttentionOptions]) -> None:
        super().__init__(model, **kwargs)
        if steps < 2 or chunk_size < 1:
            raise ValueError("steps must be >= 2 and chunk_size >= 1")
        self.start_layer, self.steps, self.chunk_size = self._start_layer(start_layer), steps, chunk_size

    def _start_layer(self, start_layer: int | None) -> int:
        """The ``start_layer`` used: ``start_layer`` checked, or the reference's default for this ViT."""
        raise NotImplementedError

    def _ig_weights(self, x: Tensor, cls: Tensor) -> Tensor:
        """``W`` for each class: ``[K, B, N, N]``.

        Only the last block's attention needs a gradient: the blocks before it run without an autograd graph
        (the last block's input becomes a leaf), so each step costs a plain forward pass and the K class
        gradients go back through the last block and the head only.
        """
        alphas = torch.linspace(0, 1, self.steps, dtype=x.dtype, device=x.device)
        total = None
        b = x.shape[0]

        def leaf_input(module: nn.Module, args: tuple[Tensor, ...]) -> tuple[Tensor, ...]:
            return (args[0].detach().requires_grad_(True), *args[1:])

        handle = self.info.blocks[-1].register_forward_pre_hook(leaf_input)
        try:
            for start in range(0, self.steps, self.chunk_size):
                a = alphas[start : start + self.chunk_size]
                xs = (a.view(-1, 1, 1, 1, 1) * x).reshape(-1, *x.shape[1:])
                with torch.enable_grad(), trace_attention(self.model, slice(-1, None)) as traces:
                    out = self.model(xs)
                last = _Trace.of(traces[-1])
                (g,) = self._gradients(out, cls.repeat(len(a), 1), [last.attn])  # [K, S*B, h, N, N]
                g = g.view(g.shape[0], len(a), b, *g.shape[2:]).sum(1)
                total = g if total is None else total + g
        finally:
            handle.remove()
        return (_built(total) / self.steps).clamp(min=0).mean(2)


@register_method("bi_attn")
class BiAttn(_IGWeighted):
    """Bi-attn (Chen et al., TMLR 2023, "Beyond Intuition").

    Head weights ``I_h = mean |A_h^T dA_h|`` normalised over heads (all zero when every gradient is zero,
    where the reference divides by zero), ``R += (sum_h I_h A_h) @ R`` from block ``start_layer - 1``, times the
    integrated-gradient weights ``W`` of the last block; the CLS row of ``W * R``.

    Args:
        model: A ViT.
        start_layer: The blocks with index ``>= start_layer - 1`` are used, as in the reference's
            ``generate_ours`` (so ``0`` and ``1`` both use every block and ``L``, the number of blocks, uses the
            last block alone). Default: the reference's 4, i.e. blocks ``3 ..``; on a ViT with at most 3 blocks,
            where the reference would use no block and return all-zero maps, ``L`` (the last block alone), with a
            warning.
        steps: Integrated-gradient steps (default 20).
        chunk_size: Steps per forward pass.
        **kwargs: See :class:`_AttentionMethod`.

    Raises:
        ValueError: If ``start_layer`` lies outside ``[0, L]``.
    """

    display_name = "Bi-attn"
    summary = "Bi-attn (attention perception x integrated-gradient feedback), ViT"
    reference = "Chen et al. Beyond Intuition: Rethinking Token Attributions inside Transformers. TMLR 2023"

    def _start_layer(self, start_layer: int | None) -> int:
        """``start_layer`` in the reference's sense: the blocks with index ``>= start_layer - 1`` are used.

        Raises:
            ValueError: If an explicit ``start_layer`` lies outside ``[0, L]``; the message says what to pass.
        """
        depth = len(self.info.blocks)
        if start_layer is None:
            default = self.reference_start_layer
            if default - 1 < depth:
                return default
            warnings.warn(
                f"{self.name}: the reference's default start_layer={default} uses the blocks with index >= "
                f"{default - 1}, and this ViT has {depth} blocks (0..{depth - 1}): the reference would use none "
                f"and return all-zero maps; start_layer={depth} is used instead, i.e. block {depth - 1} alone "
                f"(pass start_layer=0..{depth} to choose)",
                UserWarning, stacklevel=3,
            )
            return depth
        if not 0 <= start_layer <= depth:
            raise ValueError(f"start_layer must lie in [0, {depth}] for {self.name} (the blocks with index >= "
                             f"start_layer - 1 are used), got {start_layer}; pass start_layer=0..{depth} (this "
                             f"ViT has {depth} blocks)")
        return start_layer

    def _attribute(
        self, x: Tensor, classes: ClassSet | Tensor | None, target: Tensor | int | None
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Compute the maps (see :meth:`Attributor._attribute`)."""
        traces, logits, cls, grads = self._traced(x, classes, target)
        r = None
        for i, (tr, g) in enumerate(zip(traces, grads, strict=True)):
            if i < self.start_layer - 1:
                continue
            a = tr.attn.detach().unsqueeze(0)  # [1, B, h, N, N]
            ih = (a.transpose(-1, -2) @ g).abs().mean((-1, -2))  # [K, B, h]
            total = ih.sum(-1, keepdim=True)
            ih = torch.where(total > 0, ih / total.clamp(min=torch.finfo(ih.dtype).tiny), torch.zeros_like(ih))
            cam = (ih[..., None, None] * a).sum(2)  # [K, B, N, N]
            r = _eye_like(cam) if r is None else r
            r = r + cam @ r
        rows = (self._ig_weights(x, cls) * _built(r))[..., 0, :]
        return self._to_maps(rows.transpose(0, 1), x), cls, logits


@register_method("t_attn")
class TAttn(_IGWeighted):
    """Transition attention maps (Yuan et al., 2021).

    ``s`` is the CLS row of the last block's head-mean attention, ``s = s A_i + s`` for blocks
    ``L-2 .. start_layer``, weighted by the CLS row of the integrated-gradient weights ``W`` of the last block.

    Args:
        model: A ViT.
        start_layer: Last (lowest) block of the transitions ``L-2 .. start_layer``; ``L-1`` leaves only the
            last block's attention. Default: 4, the default of the reference's ``transition_attention_maps`` and
            what its evaluation scripts pass; on a ViT with at most 5 blocks the reference's loop over
            ``L-2 .. 4`` is empty and so it uses the last block's attention alone: ``start_layer`` is then
            ``L-1``, which gives the same maps (no warning: nothing differs from the reference).
        steps: Integrated-gradient steps (default 20).
        chunk_size: Steps per forward pass.
        **kwargs: See :class:`_AttentionMethod`.

    Raises:
        ValueError: If ``start_layer`` is not a block index.
    """

    display_name = "T-attn"
    summary = "transition attention maps weighted by integrated gradients, ViT"
    reference = ("Yuan et al. Explaining Information Flow Inside Vision Transformers Using Markov Chain. "
                 "XAI4Debugging 2021")

    def _start_layer(self, start_layer: int | None) -> int:
        """The lowest block of the transitions: ``start_layer`` checked, or the reference's default clipped to ``L-1``.

        Raises:
            ValueError: If an explicit ``start_layer`` is not a block index.
        """
        if start_layer is None:  # a default beyond L-2 leaves the reference's loop empty, as L-1 does here
            return min(self.reference_start_layer, len(self.info.blocks) - 1)
        return self._block_index(start_layer)

    def _attribute(
        self, x: Tensor, classes: ClassSet | Tensor | None, target: Tensor | int | None
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Compute the maps (see :meth:`Attributor._attribute`)."""
        with torch.inference_mode(), trace_attention(self.model) as recorded:
            logits, cls = self._forward(x, classes, target)
        traces = [_Trace.of(t) for t in recorded]
        s = traces[-1].attn.mean(1)[:, 0, :]  # [B, N]
        for tr in reversed(traces[self.start_layer : len(traces) - 1]):
            s = (s.unsqueeze(1) @ tr.attn.mean(1)).squeeze(1) + s
        rows = self._ig_weights(x, cls)[..., 0, :] * s.unsqueeze(0)  # [K, B, N]
        return self._to_maps(rows.transpose(0, 1), x), cls, logits


@register_method("inflow")
class InFlow(_AttentionMethod):
    """InFlow (Walker et al., AISTATS 2025): rollout of attention that models both residual connections.

    Per block: head weights ``I_h = mean |A_h^T dA_h|`` (normalised over heads), ``A = max_h I_h A_h``; with
    ``block_gradient=True`` (the reference's default ``withgrad=True``, which its evaluation scripts use)
    ``A`` becomes ``(mean_h dz_i/dA_h * A)+``, where ``z_i`` is the class logit read out after block ``i``
    (the model's final norm and head applied to that block's class token, ``block_readout="cls"``, as in
    the code the paper was published with; ``"mean"`` averages all tokens, as the reference's later code
    does). The token norms of the block input ``x``, the attention output ``a`` and the MLP output ``m``
    give the shares ``(a1, b1) = (|x|, |a|) / (|x| + |a|)`` and ``(a2, b2) = (|x + a|, |m|) / (|x + a| + |m|)``,
    the ratio ``r = b2 / a2`` (L1-normalised over tokens), ``M1 = A diag(b1) + diag(a1)``,
    ``M2 = diag(r b2 + a2)``; ``M = M1 M2`` row-normalised and multiplied over blocks; the CLS row.

    The per-block logits cost one more forward pass of the blocks (each block re-run on its recorded,
    detached input, so that ``dz_i/dA_i`` holds only block ``i``'s own path) and one batched backward pass.

    Args:
        model: A ViT that classifies its class token.
        block_gradient: Weight each block's attention by the gradient of its own read-out logit (default
            ``True``); ``False`` is the plain variant (the reference's ``withgrad=False``).
        block_readout: ``"cls"`` (default) or ``"mean"``: which tokens the per-block read-out uses.
        **kwargs: See :class:`_AttentionMethod`.
    """

    display_name = "InFlow"
    summary = "InFlow: rollout modelling both residual connections, per-block gradient weights, ViT"
    reference = "Walker et al. InFlow: Attention flow for Vision Transformer explanation. AISTATS 2025"

    def __init__(self, model: nn.Module, *, block_gradient: bool = True, block_readout: str = "cls",
                 **kwargs: Unpack[AttentionOptions]) -> None:
        super().__init__(model, **kwargs)
        if block_readout not in ("cls", "mean"):
            raise ValueError(f"block_readout must be 'cls' or 'mean', got {block_readout!r}")
        self.block_gradient, self.block_readout = block_gradient, block_readout
        if block_gradient:
            self._head = head_parts(model, self.info)

    def _block_logit_gradients(self, traces: list[_Trace], cls: Tensor) -> list[Tensor]:
        """``dz_i[c] / dA_i`` for every block ``i`` and class: ``[K, B, heads, N, N]`` per block."""
        norm, head = self._head
        attns, total = [], None
        with torch.enable_grad():
            for block, tr in zip(self.info.blocks, traces, strict=True):
                flows = block_flows(block, self.info.kind, tr.x_in.detach().requires_grad_(True))
                tokens = norm(flows.out)
                h = tokens[:, 0] if self.block_readout == "cls" else tokens.mean(1)
                for mod in head:
                    h = mod(h)
                attns.append(flows.attn)
                total = h if total is None else total + h  # z_i depends on A_i only: the sum separates
        return self._gradients(_built(total), cls, attns)

    def _attribute(
        self, x: Tensor, classes: ClassSet | Tensor | None, target: Tensor | int | None
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Compute the maps (see :meth:`Attributor._attribute`)."""
        traces, logits, cls, grads = self._traced(x, classes, target)
        block_grads = self._block_logit_gradients(traces, cls) if self.block_gradient else [None] * len(traces)
        joint = None
        for tr, g, gb in zip(traces, grads, block_grads, strict=True):
            a = tr.attn.detach().unsqueeze(0)  # [1, B, h, N, N]
            ih = (a.transpose(-1, -2) @ g).abs().mean((-1, -2))  # [K, B, h]
            total = ih.sum(-1, keepdim=True)
            ih = torch.where(total > 0, ih / total.clamp(min=torch.finfo(ih.dtype).tiny), torch.zeros_like(ih))
            att = (a * ih[..., None, None]).amax(2)  # [K, B, N, N]
            if gb is not None:
                att = (gb.mean(2) * att).clamp(min=0)
            xin, aout, mout = (t.detach() for t in (tr.x_in, tr.attn_out, tr.mlp_out))
            a1, b1 = _shares(xin.norm(dim=-1), aout.norm(dim=-1))
            a2, b2 = _shares((xin + aout).norm(dim=-1), mout.norm(dim=-1))
            r = b2 / a2
            r = r / r.abs().sum(-1, keepdim=True)
            m1 = att * b1[:, None, :] + torch.diag_embed(a1)
            m = _row_normalize(m1 @ torch.diag_embed(r * b2 + a2))
            joint = m if joint is None else m @ joint
        return self._to_maps(_built(joint)[..., 0, :].transpose(0, 1), x), cls, logits


def _shares(u: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
    total = u + v
    return u / total, v / total
