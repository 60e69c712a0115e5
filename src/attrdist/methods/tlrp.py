"""T-LRP (Chefer, Gur, Wolf, CVPR 2021): LRP relevance of every block's attention, weighted by its gradient.

The relevance of each class starts as its one-hot logit and flows back through the classifier head and
the blocks of a stock timm or torchvision ViT with the reference's rules, batched as ``[K, B, ...]``
(one relevance pass for all samples and classes, no re-implemented model):

- linear layers: LRP-alpha1-beta0 (positive weights on positive inputs plus negative weights on
  negative inputs; biases ignored);
- norms, activations, softmax, dropout, layer scale: relevance passes unchanged;
- residual sums ``x + y``: ``x R/z`` and ``y R/z``, rescaled so that each part carries its share
  ``|sum_x| / (|sum_x| + |sum_y|)`` of the total (per sample and class; the reference sums over the batch);
- the products ``q k^T`` and ``A v``: ``X R/Z`` for both factors, each halved;
- a tensor used twice collects the relevance of both uses;
- the class-token read-out puts the relevance on the class token.

Every division uses the reference's stabiliser: ``R / (z + 1e-9)`` where ``z != 0``, 0 where ``z == 0``.
Per block, the relevance ``R_A`` of the post-softmax attention and its class gradient ``dA`` give
``mean_h (dA * R_A)+``; these are rolled out with ``+ I`` from ``start_layer`` up, each row-normalised
(as the spec states; the reference code has that line commented out: ``row_normalize=False``), and the
class token's row is the map.

``lxt`` (AttnLRP) was considered as the LRP engine: its rules for attention and norms differ from
Chefer's, so the rules are implemented here, on the flows :func:`~attrdist.models.vit.block_flows`
recomputes.
"""

from __future__ import annotations

from typing import Unpack

import torch
from torch import Tensor, nn

from ..classes import ClassSet
from ..models.vit import block_flows, block_parts, head_parts
from .base import register_method
from .transformer import AttentionOptions, _AttentionMethod, _built, _eye_like, _row_normalize

__all__ = ["TLRP"]

EPS = 1e-9


def _div(r: Tensor, z: Tensor) -> Tensor:
    """``r / (z + EPS)`` where ``z != 0``, else 0 (the reference's ``safe_divide``)."""
    den = z + EPS
    den = torch.where(den == 0, torch.full_like(den, EPS), den)
    return torch.where(z != 0, r / den, torch.zeros_like(den))


def _linear_rule(weight: Tensor, x: Tensor, r: Tensor) -> Tensor:
    """alpha1-beta0: relevance ``r [K, ..., out]`` of ``x [..., in] @ weight.T`` back to ``[K, ..., in]``."""
    pw, nw = weight.clamp(min=0), weight.clamp(max=0)
    px, nx = x.clamp(min=0), x.clamp(max=0)
    s = _div(r, px @ pw.T + nx @ nw.T)
    return px * (s @ pw) + nx * (s @ nw)


def _residual_rule(r: Tensor, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
    """Split the relevance of ``x + y`` (``[K, B, N, D]``) between the summands, per sample and class."""
    s = _div(r, x + y)
    a, b = x * s, y * s
    dims = (-2, -1)
    sa, sb, total = a.sum(dims, keepdim=True), b.sum(dims, keepdim=True), r.sum(dims, keepdim=True)
    share = sa.abs() + sb.abs()
    return a * _div(_div(sa.abs(), share) * total, sa), b * _div(_div(sb.abs(), share) * total, sb)


def _product_rule(x: Tensor, y: Tensor, r: Tensor) -> tuple[Tensor, Tensor]:
    """Relevance of ``x @ y`` to both factors, each halved."""
    s = _div(r, x @ y)
    return x * (s @ y.transpose(-1, -2)) / 2, y * (x.transpose(-1, -2) @ s) / 2


def _copies_rule(x: Tensor, r1: Tensor, r2: Tensor) -> Tensor:
    """Relevance of a tensor ``x`` used twice (the residual branch point): ``x (r1/x + r2/x)``."""
    return x * (_div(r1, x) + _div(r2, x))


@register_method("tlrp")
class TLRP(_AttentionMethod):
    """Transformer attribution by LRP (Chefer et al., CVPR 2021), see the module docstring.

    Args:
        model: A timm or torchvision ViT that classifies its class token with a linear head and whose
            blocks are standard pre-norm blocks.
        start_layer: First block of the rollout (reference default 0).
        row_normalize: Row-normalise ``mean_h (dA * R_A)+ + I`` before the rollout (the spec; the
            reference code does not).
        **kwargs: See :class:`~attrdist.methods.transformer._AttentionMethod`.

    Raises:
        TypeError: For other ViT designs (average or attention pooling, gated attention, GLU MLPs).
        ValueError: If ``start_layer`` is not a block index.
    """

    display_name = "T-LRP"
    summary = "Chefer et al. CVPR'21 transformer attribution (LRP x attention gradient, rollout), ViT"
    reference = "Chefer, Gur, Wolf. Transformer Interpretability Beyond Attention Visualization. CVPR 2021"

    def __init__(self, model: nn.Module, *, start_layer: int = 0, row_normalize: bool = True,
                 **kwargs: Unpack[AttentionOptions]) -> None:
        super().__init__(model, **kwargs)
        self.norm, self.head = head_parts(model, self.info)
        self.parts = [block_parts(b, self.info.kind) for b in self.info.blocks]
        self.start_layer, self.row_normalize = self._block_index(start_layer), row_normalize

    def _head_relevance(self, tokens: Tensor, cls: Tensor) -> Tensor:
        """One-hot logit relevance ``[K, B, classes]`` back to the final tokens ``[K, B, N, D]``."""
        with torch.no_grad():
            normed = self.norm(tokens)
            inputs, h = [], normed[:, 0]
            for mod in self.head:
                inputs.append(h)
                h = mod(h)
            r = torch.zeros(cls.shape[1], *h.shape, dtype=h.dtype, device=h.device)
            r.scatter_(-1, cls.T.unsqueeze(-1), 1.0)
            for mod, inp in zip(reversed(self.head), reversed(inputs), strict=True):
                if isinstance(mod, nn.Linear):
                    r = _linear_rule(mod.weight, inp, r)
            out = torch.zeros(r.shape[0], *tokens.shape, dtype=r.dtype, device=r.device)
            out[..., 0, :] = normed[:, 0] * _div(r, normed[:, 0])
        return out

    def _attribute(
        self, x: Tensor, classes: ClassSet | Tensor | None, target: Tensor | int | None
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Compute the maps (see :meth:`Attributor._attribute`)."""
        traces, logits, cls, grads = self._traced(x, classes, target, start=self.start_layer)
        kind = self.info.kind
        with torch.no_grad():
            last = block_flows(self.info.blocks[-1], kind, traces[-1].x_in.detach())
            r = self._head_relevance(last.out, cls)
            row = None  # the class token's row of the rollout, built from the top block down
            for i in range(len(traces) - 1, self.start_layer - 1, -1):
                f = last if i == len(traces) - 1 else block_flows(self.info.blocks[i], kind, traces[i].x_in.detach())
                parts = self.parts[i]
                r_res, r_mlp = _residual_rule(r, f.mid, f.mlp_branch)
                r_mlp = _linear_rule(parts.fc1.weight, f.norm2, _linear_rule(parts.fc2.weight, f.fc2_in, r_mlp))
                r = _copies_rule(f.mid, r_res, r_mlp)
                r_res, r_att = _residual_rule(r, f.x_in, f.attn_branch)
                r_att = _linear_rule(parts.proj.weight, f.proj_in, r_att)
                r_att = torch.unflatten(r_att, -1, (parts.heads, -1)).transpose(-2, -3)  # [K, B, h, N, d]
                r_a, r_v = _product_rule(f.attn, f.v, r_att)
                cam = (grads[i - self.start_layer] * r_a).clamp(min=0).mean(2)  # [K, B, N, N]
                m = cam + _eye_like(cam)
                m = _row_normalize(m) if self.row_normalize else m
                row = m[..., :1, :] if row is None else row @ m
                if i == self.start_layer:
                    break
                r_q, r_k = _product_rule(f.q, f.k.transpose(-1, -2), r_a)
                r_qkv = torch.stack([r_q, r_k.transpose(-1, -2), r_v], -3)  # [K, B, h, 3, N, d]
                r_qkv = r_qkv.permute(0, 1, 4, 3, 2, 5).flatten(-3)  # [K, B, N, (3 h d)]
                r_att = _linear_rule(parts.qkv_weight, f.norm1, r_qkv)
                r = _copies_rule(f.x_in, r_res, r_att)
        return self._to_maps(_built(row)[..., 0, :].transpose(0, 1), x), cls, logits
