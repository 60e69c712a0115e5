"""Class activation maps from one layer: Grad-CAM, LayerCAM and Guided Grad-CAM.

The K class gradients only flow back to the CAM layer, so K classes cost about one forward pass plus
K short backward passes.
"""

from __future__ import annotations

from typing import Any, Literal

import torch
from torch import Tensor, nn

from ..classes import ClassSet
from .base import Attributor, register_method
from .hooks import GuidedState, capture_output, guided_activations, resolve_module

__all__ = ["GradCAM", "GuidedGradCAM", "LayerCAM", "TokenGradCAM"]


class _CAM(Attributor):
    """Base of layer-activation methods.

    Args:
        model: The classifier.
        layer: The layer whose output is weighted: a dotted module name or a module; default: the
            architecture's CAM layer (``attrdist models`` lists them).
        relu: Apply the ReLU of the method's definition to the map.
        resolution: ``"input"`` (upsampled to the input size) or ``"native"`` (the layer's grid).
        upsample: Interpolation mode used for ``resolution="input"``.
        **kwargs: See :class:`Attributor`.
    """

    def __init__(
        self, model: nn.Module, *, layer: str | nn.Module | None = None, relu: bool = True,
        resolution: Literal["input", "native"] = "input", upsample: str = "bilinear",
        **kwargs: Any,
    ) -> None:
        super().__init__(model, **kwargs)
        if layer is None:
            from ..models.architectures import default_cam_layer

            layer = default_cam_layer(model)
        self.layer = resolve_module(model, layer)
        from ..models.vit import is_vit, vit_info

        self._vit = vit_info(model) if is_vit(model) else None
        if resolution not in ("input", "native"):
            raise ValueError(f"resolution must be 'input' or 'native', got {resolution!r}")
        self.relu, self.resolution, self.upsample = relu, resolution, upsample

    def _cam(self, acts: Tensor, grads: Tensor) -> Tensor:
        """Combine activations ``[B, C, h, w]`` and class gradients ``[K, B, C, h, w]`` into ``[K, B, h, w]``."""
        raise NotImplementedError

    def _as_grid(self, t: Tensor, x: Tensor) -> Tensor:
        """Layer outputs on their spatial grid.

        Conv maps stay as they are; ViT tokens ``[..., N, D]`` become the patch grid ``[..., D, h, w]``
        (prefix tokens dropped, as pytorch-grad-cam's reshape transform does).
        """
        if self._vit is not None:
            from ..models.vit import tokens_to_grid

            return tokens_to_grid(t, self._vit, (int(x.shape[-2]), int(x.shape[-1])))
        if t.dim() < 4:
            raise ValueError(f"CAM layer output must be [B, C, h, w], got {tuple(t.shape)}; choose a convolutional "
                             "layer")
        return t

    def _layer_maps(
        self, x: Tensor, classes: ClassSet | Tensor | None, target: Tensor | int | None
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Forward once, capture the layer, return ``(cam [B, K, h, w], classes, logits)`` (graph kept)."""
        with capture_output(self.layer, as_leaf=True) as cap:
            logits, cls = self._forward(x, classes, target)
        acts = cap.output
        (g,) = self._gradients(logits, cls, [acts], retain_graph=True)
        acts, g = self._as_grid(acts.detach(), x), self._as_grid(g, x)
        cam = self._cam(acts, g)
        if self.relu:
            cam = cam.clamp(min=0)
        return cam.transpose(0, 1), cls, logits

    def _attribute(
        self, x: Tensor, classes: ClassSet | Tensor | None, target: Tensor | int | None
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Compute the maps (see :meth:`Attributor._attribute`)."""
        with torch.enable_grad():
            cam, cls, logits = self._layer_maps(x, classes, target)
        if self.resolution == "input":
            cam = self._to_input_size(cam, tuple(x.shape[-2:]), self.upsample)
        return cam, cls, logits.detach()


@register_method("gradcam")
class GradCAM(_CAM):
    """Grad-CAM (Selvaraju et al., 2017): ``ReLU(sum_c mean_ij(dy/dA_c) A_c)``, raw (never min-max scaled).

    On a Vision Transformer ``get_method("gradcam", vit)`` builds the attention Grad-CAM of the last block
    (:class:`~attrdist.methods.transformer.AttentionGradCAM`, the VAR paper's ViT Grad-CAM); the token CAM
    is ``token_gradcam`` (or ``gradcam`` with an explicit ``layer=``).
    """

    display_name = "Grad-CAM"
    summary = "Grad-CAM on the architecture's CAM layer (ViT: attention Grad-CAM of the last block)"
    reference = "Selvaraju et al. Grad-CAM: Visual Explanations from Deep Networks. ICCV 2017"

    @classmethod
    def create(cls, model: nn.Module, **options: Any) -> Attributor:
        """Grad-CAM for ``model``: the attention Grad-CAM on a ViT unless a ``layer`` is named."""
        from ..models.vit import is_vit

        if cls is GradCAM and is_vit(model) and options.get("layer") is None:
            from .transformer import AttentionGradCAM

            options.pop("layer", None)
            return AttentionGradCAM(model, **options)
        return cls(model, **options)

    def _cam(self, acts: Tensor, grads: Tensor) -> Tensor:
        """Channel weights are the spatial mean of the gradients."""
        weights = grads.mean(dim=(-2, -1), keepdim=True)
        return (weights * acts).sum(2)


@register_method("token_gradcam")
class TokenGradCAM(GradCAM):
    """Grad-CAM on a ViT's tokens: the last block's first norm (``norm1``/``ln_1``) on the patch grid.

    The layer's tokens are put on the patch grid (prefix tokens dropped, as pytorch-grad-cam's reshape
    transform does) and weighted as in Grad-CAM.
    """

    display_name = "Token Grad-CAM"
    summary = "Grad-CAM on the last block's norm1 tokens on the patch grid, ViT"
    applies_to = frozenset({"vit"})


@register_method("layercam")
class LayerCAM(_CAM):
    """LayerCAM (Jiang et al., 2021): ``ReLU(sum_c ReLU(dy/dA_c) * A_c)``, raw."""

    display_name = "LayerCAM"
    summary = "LayerCAM: positive gradients as per-location weights"
    reference = "Jiang et al. LayerCAM: Exploring Hierarchical Class Activation Maps. IEEE TIP 2021"

    def _cam(self, acts: Tensor, grads: Tensor) -> Tensor:
        """Weights are the positive gradients at each location."""
        return (grads.clamp(min=0) * acts).sum(2)


@register_method("guided_gradcam")
class GuidedGradCAM(GradCAM):
    """Guided Grad-CAM (Selvaraju et al., 2017): Guided Backprop times the upsampled Grad-CAM.

    One forward pass serves both: the CAM uses plain gradients, the guided part the guided ones.
    Channel-summed, this is ``cam * sum_c gbp_c``.
    """

    display_name = "Guided Grad-CAM"
    summary = "guided backprop x Grad-CAM (one forward pass for both)"
    reference = "Selvaraju et al. Grad-CAM: Visual Explanations from Deep Networks. ICCV 2017"

    def _attribute(
        self, x: Tensor, classes: ClassSet | Tensor | None, target: Tensor | int | None
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Compute the maps (see :meth:`Attributor._attribute`)."""
        state = GuidedState(guided=False)
        with guided_activations(self.model, state):
            xg = x.clone().requires_grad_(True)
            with capture_output(self.layer) as cap:
                logits, cls = self._forward(xg, classes, target)
            acts = cap.output
            (g_layer,) = self._gradients(logits, cls, [acts], retain_graph=True)
            state.guided = True
            (g_in,) = self._gradients(logits, cls, [xg])
        cam = self._cam(self._as_grid(acts.detach(), x), self._as_grid(g_layer, x))
        if self.relu:
            cam = cam.clamp(min=0)
        cam = self._to_input_size(cam.transpose(0, 1), tuple(x.shape[-2:]), self.upsample)
        gbp = g_in.transpose(0, 1)  # [B, K, C, H, W]
        maps = gbp * cam.unsqueeze(2)
        return maps, cls, logits.detach()
