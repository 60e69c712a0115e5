"""Input-gradient methods: gradient, Input x Gradient, Guided Backprop, Integrated Gradients, SmoothGrad."""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch
from torch import Tensor, nn

from ..classes import ClassSet
from .base import Attributor, register_method
from .hooks import GuidedState, guided_activations

__all__ = ["Gradient", "GuidedBackprop", "InputXGradient", "IntegratedGradients", "SmoothGrad", "ig_rule"]


@register_method("gradient")
class Gradient(Attributor):
    """Signed input gradient of the class logit, summed over channels (Simonyan et al., 2014).

    Maps are raw (no absolute value): use ``magnitude="abs"`` in VAR for the ``|grad|`` convention.

    Example:
        >>> maps = Gradient(model)(x, "top3+worst")   # doctest: +SKIP
    """

    summary = "input gradient of the class logit (signed, channel-summed)"
    reference = "Simonyan, Vedaldi, Zisserman. Deep Inside Convolutional Networks. ICLR-W 2014"

    def attribute(self, x: Tensor, classes: ClassSet | Tensor, target: Tensor | int | None) -> tuple:
        """Compute the maps (see :meth:`Attributor.attribute`)."""
        xg = x.clone().requires_grad_(True)
        logits, cls = self.forward(xg, classes, target)
        (g,) = self.gradients(logits, cls, [xg])
        return self.reduce_channels(self.post(x, g)), cls, logits.detach()

    def post(self, x: Tensor, grads: Tensor) -> Tensor:
        """Turn the class gradients ``[K, B, C, H, W]`` into per-channel attributions."""
        return grads


@register_method("input_x_gradient")
class InputXGradient(Gradient):
    """Input times gradient, summed over channels (Shrikumar et al., 2016)."""

    summary = "input x gradient (channel-summed)"
    reference = "Shrikumar et al. Not Just a Black Box: Learning Important Features. arXiv:1605.01713"

    def post(self, x: Tensor, grads: Tensor) -> Tensor:
        """Multiply the gradients by the input."""
        return grads * x


@register_method("guided_backprop")
class GuidedBackprop(Gradient):
    """Guided Backpropagation (Springenberg et al., 2015).

    Negative gradients are clamped at every activation module (ReLU, ReLU6, LeakyReLU, Hardtanh; for
    smooth activations such as GELU or SiLU the clamp acts on ``g * f'(x)``). Activations applied
    functionally (``F.relu``) cannot be seen and pass plain gradients.
    """

    summary = "guided backpropagation: negative gradients clamped at every activation"
    reference = "Springenberg et al. Striving for Simplicity: The All Convolutional Net. ICLR-W 2015"

    def attribute(self, x: Tensor, classes: ClassSet | Tensor, target: Tensor | int | None) -> tuple:
        """Compute the maps (see :meth:`Attributor.attribute`)."""
        with guided_activations(self.model, GuidedState(guided=True)):
            return super().attribute(x, classes, target)


IGRule = Literal["gausslegendre", "riemann_left", "riemann_right", "riemann_middle", "riemann_trapezoid"]


def ig_rule(steps: int, rule: IGRule) -> tuple[np.ndarray, np.ndarray]:
    """Interpolation points and weights of the path integral over ``alpha in [0, 1]``.

    Args:
        steps: Number of points.
        rule: Quadrature rule.

    Returns:
        ``(alphas, weights)``, both of length ``steps``; the weights sum to 1.

    Raises:
        ValueError: On an unknown rule or too few steps.
    """
    if steps < 1 or (rule == "riemann_trapezoid" and steps < 2):
        raise ValueError(f"integrated gradients needs more steps than {steps} for rule {rule!r}")
    i = np.arange(steps, dtype=np.float64)
    if rule == "gausslegendre":
        nodes, w = np.polynomial.legendre.leggauss(steps)
        return 0.5 * (nodes + 1.0), 0.5 * w
    if rule == "riemann_left":
        return i / steps, np.full(steps, 1.0 / steps)
    if rule == "riemann_right":
        return (i + 1) / steps, np.full(steps, 1.0 / steps)
    if rule == "riemann_middle":
        return (i + 0.5) / steps, np.full(steps, 1.0 / steps)
    if rule == "riemann_trapezoid":
        w = np.full(steps, 1.0 / (steps - 1))
        w[[0, -1]] *= 0.5
        return i / (steps - 1), w
    raise ValueError(f"unknown integration rule {rule!r}")


class _SampledGradient(Attributor):
    """Weighted sum of class gradients at S points around ``x``, evaluated in chunks of points.

    Args:
        model: The classifier.
        chunk_size: Points per forward pass (each pass holds ``chunk_size * B`` images); bounds memory.
        **kwargs: See :class:`Attributor`.
    """

    def __init__(self, model: nn.Module, *, chunk_size: int = 16, **kwargs: object) -> None:
        super().__init__(model, **kwargs)  # type: ignore[arg-type]
        if chunk_size < 1:
            raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
        self.chunk_size = chunk_size

    def points(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Return the points ``[S, B, C, H, W]`` and their weights ``[S]``."""
        raise NotImplementedError

    def post(self, x: Tensor, summed: Tensor) -> Tensor:
        """Turn the weighted gradient sum ``[K, B, C, H, W]`` into per-channel attributions."""
        return summed

    def attribute(self, x: Tensor, classes: ClassSet | Tensor, target: Tensor | int | None) -> tuple:
        """Compute the maps (see :meth:`Attributor.attribute`)."""
        with torch.no_grad():
            logits, cls = self.forward(x, classes, target)
        pts, weights = self.points(x)
        b, k = cls.shape
        total = x.new_zeros(k, *x.shape)
        for start in range(0, pts.shape[0], self.chunk_size):
            chunk = pts[start : start + self.chunk_size]
            s = chunk.shape[0]
            xs = chunk.reshape(s * b, *x.shape[1:]).requires_grad_(True)
            out = self.model(xs)
            (g,) = self.gradients(out, cls.repeat(s, 1), [xs])
            w = weights[start : start + s].to(g).view(1, s, 1, 1, 1, 1)
            total += (g.view(k, s, *x.shape) * w).sum(1)
        return self.reduce_channels(self.post(x, total)), cls, logits


@register_method("integrated_gradients")
class IntegratedGradients(_SampledGradient):
    """Integrated Gradients (Sundararajan et al., 2017), channel-summed.

    ``(x - x0) * sum_i w_i grad f_c(x0 + alpha_i (x - x0))`` with the points and weights of ``rule``.

    Args:
        model: The classifier.
        steps: Number of integration points (default 32).
        baseline: Baseline ``x0``: a number or a tensor broadcastable to the input (default 0).
        rule: Quadrature rule (default ``"gausslegendre"``, Captum's default).
        chunk_size: Points per forward pass.
        **kwargs: See :class:`Attributor`.
    """

    summary = "integrated gradients from a baseline (default black), 32 steps"
    reference = "Sundararajan, Taly, Yan. Axiomatic Attribution for Deep Networks. ICML 2017"

    def __init__(
        self, model: nn.Module, *, steps: int = 32, baseline: float | Tensor = 0.0,
        rule: IGRule = "gausslegendre", chunk_size: int = 16, **kwargs: object,
    ) -> None:
        super().__init__(model, chunk_size=chunk_size, **kwargs)
        self.alphas, self.weights = ig_rule(steps, rule)
        self.baseline = baseline

    def points(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Points on the straight path from the baseline to ``x``."""
        x0 = torch.as_tensor(self.baseline, dtype=x.dtype, device=x.device).expand_as(x)
        a = torch.as_tensor(self.alphas, dtype=x.dtype, device=x.device).view(-1, 1, 1, 1, 1)
        return x0 + a * (x - x0), torch.as_tensor(self.weights)

    def post(self, x: Tensor, summed: Tensor) -> Tensor:
        """Multiply the averaged gradient by ``x - x0``."""
        x0 = torch.as_tensor(self.baseline, dtype=x.dtype, device=x.device)
        return summed * (x - x0)


@register_method("smoothgrad")
class SmoothGrad(_SampledGradient):
    """SmoothGrad (Smilkov et al., 2017): the mean gradient over noisy copies of the input.

    Args:
        model: The classifier.
        samples: Number of noisy copies (default 25).
        noise_level: Noise standard deviation as a fraction of each image's value range (default 0.15).
        seed: Seed of the noise draws (the same draws for every image, so results are reproducible and
            independent of the batch).
        chunk_size: Copies per forward pass.
        **kwargs: See :class:`Attributor`.
    """

    summary = "mean gradient over 25 noisy copies (noise 15% of the value range)"
    reference = "Smilkov et al. SmoothGrad: removing noise by adding noise. arXiv:1706.03825"

    def __init__(
        self, model: nn.Module, *, samples: int = 25, noise_level: float = 0.15, seed: int = 0,
        chunk_size: int = 16, **kwargs: object,
    ) -> None:
        super().__init__(model, chunk_size=chunk_size, **kwargs)
        if samples < 1 or noise_level < 0:
            raise ValueError("smoothgrad needs samples >= 1 and noise_level >= 0")
        self.samples, self.noise_level, self.seed = samples, noise_level, seed

    def points(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Noisy copies of ``x``, the same seeded draws for every image (results do not depend on the batch)."""
        gen = torch.Generator(device="cpu").manual_seed(self.seed)
        noise = torch.randn((self.samples, 1, *x.shape[1:]), generator=gen, dtype=x.dtype).to(x.device)
        flat = x.flatten(1)
        span = (flat.amax(1) - flat.amin(1)).view(1, -1, 1, 1, 1)
        return x + noise * self.noise_level * span, torch.full((self.samples,), 1.0 / self.samples)
