"""Adapters: let VAR refine attributions computed by other libraries or by any function.

Adapters call the wrapped attribution once per class of the set (K calls, K forward passes): they give
the same contract as the built-in methods, not their one-forward-pass speed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol, cast

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..classes import ClassSet
from .base import Attributor

__all__ = ["CallableAdapter", "CaptumAdapter", "GradCamAdapter"]


class _CaptumAttribution(Protocol):
    """What :class:`CaptumAdapter` calls on a Captum ``Attribution`` object."""

    def attribute(self, inputs: Tensor, *args: Any, **kwargs: Any) -> Tensor: ...


class _ActivationsAndGradients(Protocol):
    """pytorch-grad-cam's ``ActivationsAndGradients``: runs the model and keeps the target layers' tensors."""

    activations: list[Tensor]
    gradients: list[Tensor]

    def __call__(self, x: Tensor) -> Tensor: ...


class _RawCAM(Protocol):
    """What :class:`GradCamAdapter` reads from a pytorch-grad-cam ``BaseCAM`` object."""

    model: nn.Module
    uses_gradients: bool
    target_layers: list[nn.Module]
    activations_and_grads: _ActivationsAndGradients

    def get_cam_image(self, input_tensor: Tensor, target_layer: nn.Module, targets: list[Any], activations: Any,
                      grads: Any, eigen_smooth: bool) -> np.ndarray: ...


class CallableAdapter(Attributor):
    """Any function ``fn(x, classes) -> map``, called once per class of the set.

    Args:
        model: The classifier (its logits pick the class set).
        fn: ``fn(x [B, C, H, W], class [B] LongTensor) -> [B, H, W]`` or ``[B, C', H, W]`` (channels are
            summed); maps at another resolution are upsampled bilinearly to the input size.
        name: Name shown in results.

    Example:
        >>> adapter = CallableAdapter(model, lambda x, c: my_saliency(x, c))  # doctest: +SKIP
    """

    summary = "any callable (x, class) -> map, one call per class"

    def __init__(self, model: nn.Module, fn: Callable[[Tensor, Tensor], Tensor], name: str = "callable",
                 **kwargs: Any) -> None:
        super().__init__(model, **kwargs)
        self.fn = fn
        self.name = name

    def _per_class(self, x: Tensor, cls: Tensor) -> Tensor:
        """One map ``[B, H, W]`` for class ``cls`` ``[B]``."""
        with torch.enable_grad():
            out = self.fn(x.clone().requires_grad_(True), cls)
        return torch.as_tensor(out, device=x.device)

    def _attribute(
        self, x: Tensor, classes: ClassSet | Tensor | None, target: Tensor | int | None
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Compute the maps (see :meth:`Attributor._attribute`)."""
        with torch.no_grad():
            logits, cls = self._forward(x, classes, target)
        maps = []
        for k in range(cls.shape[1]):
            m = self._per_class(x, cls[:, k]).detach()
            if m.dim() == 4:
                m = m.sum(1)
            if m.dim() != 3 or m.shape[0] != x.shape[0]:
                raise ValueError(f"{self.name} returned a map of shape {tuple(m.shape)}; expected [B, H, W]")
            maps.append(m.to(x.dtype))
        stacked = torch.stack(maps, 1)
        return self._to_input_size(stacked, tuple(x.shape[-2:])), cls, logits


class CaptumAdapter(CallableAdapter):
    """A Captum ``Attribution`` object (``Saliency``, ``IntegratedGradients``, ``LayerGradCam``, ...).

    ``attribute(x, target=class, **kwargs)`` runs once per class; 4-D results are channel-summed, and
    layer attributions (Grad-CAM) are upsampled bilinearly to the input size.

    Args:
        model: The classifier the Captum object explains.
        attribution: The Captum attribution object.
        **attribute_kwargs: Passed to ``attribution.attribute`` (``n_steps``, ``baselines``, ...).
    """

    summary = "a Captum Attribution object, one call per class"

    def __init__(self, model: nn.Module, attribution: object, **attribute_kwargs: object) -> None:
        super().__init__(model, self._call, name=f"captum:{type(attribution).__name__}")
        self.attribution = cast(_CaptumAttribution, attribution)
        self.attribute_kwargs = attribute_kwargs

    def _call(self, x: Tensor, cls: Tensor) -> Tensor:
        return self.attribution.attribute(x, target=cls, **self.attribute_kwargs)


class GradCamAdapter(CallableAdapter):
    """A pytorch-grad-cam CAM object, raw: the ReLU'd CAM before its per-map min-max scaling.

    pytorch-grad-cam scales every map to [0, 1] on its own, which removes the cross-class comparison VAR
    needs; this adapter reads the CAM before that step, averages over its target layers and upsamples
    bilinearly to the input size.

    Args:
        model: The classifier the CAM object explains.
        cam: A ``pytorch_grad_cam`` CAM object (``GradCAM``, ``LayerCAM``, ``HiResCAM``, ...).
    """

    summary = "a pytorch-grad-cam CAM object (raw, not min-max scaled), one call per class"

    def __init__(self, model: nn.Module, cam: object) -> None:
        super().__init__(model, self._call, name=f"pytorch-grad-cam:{type(cam).__name__}")
        self.cam = cast(_RawCAM, cam)

    def _call(self, x: Tensor, cls: Tensor) -> Tensor:
        from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

        cam = self.cam
        targets = [ClassifierOutputTarget(int(c)) for c in cls]
        outputs = cam.activations_and_grads(x)
        try:
            if cam.uses_gradients:
                cam.model.zero_grad()
                loss = sum(t(o) for t, o in zip(targets, outputs, strict=True))
                loss.backward(retain_graph=True)
            acts = [a.cpu().numpy() for a in cam.activations_and_grads.activations]
            grads = [g.cpu().numpy() for g in cam.activations_and_grads.gradients]
            layers = []
            for i, layer in enumerate(cam.target_layers):
                raw = cam.get_cam_image(x, layer, targets, acts[i], grads[i], False)
                m = torch.as_tensor(raw, dtype=x.dtype, device=x.device).clamp(min=0)[:, None]
                layers.append(F.interpolate(m, size=x.shape[-2:], mode="bilinear", align_corners=False)[:, 0])
        finally:
            cam.activations_and_grads.gradients = []
            cam.activations_and_grads.activations = []
        return torch.stack(layers).mean(0)
