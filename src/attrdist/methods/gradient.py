"""Input-gradient methods: gradient, Input x Gradient, Guided Backprop, Integrated Gradients, SmoothGrad."""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor, nn

from ..classes import ClassSet
from ..smoothing import gaussian_radius, smooth
from .base import Attributor, register_method
from .hooks import GuidedState, guided_activations

__all__ = ["Gradient", "GuidedBackprop", "InputXGradient", "IntegratedGradients", "SmoothGrad", "ig_rule",
           "parse_memory"]


@register_method("gradient")
class Gradient(Attributor):
    """Signed input gradient of the class logit, summed over channels (Simonyan et al., 2014).

    Maps are raw (no absolute value): use ``magnitude="abs"`` in VAR for the ``|grad|`` convention.

    Example:
        >>> maps = Gradient(model)(x, "top3+worst")   # doctest: +SKIP
    """

    display_name = "Gradient"
    summary = "input gradient of the class logit (signed, channel-summed)"
    reference = "Simonyan, Vedaldi, Zisserman. Deep Inside Convolutional Networks. ICLR-W 2014"

    def _attribute(
        self, x: Tensor, classes: ClassSet | Tensor | None, target: Tensor | int | None
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Compute the maps (see :meth:`Attributor._attribute`)."""
        xg = x.clone().requires_grad_(True)
        logits, cls = self._forward(xg, classes, target)
        (g,) = self._gradients(logits, cls, [xg])
        return self._per_sample(self._post(x, g)), cls, logits.detach()

    def _post(self, x: Tensor, grads: Tensor) -> Tensor:
        """Turn the class gradients ``[K, B, C, H, W]`` into per-channel attributions."""
        return grads


@register_method("input_x_gradient")
class InputXGradient(Gradient):
    """Input times gradient, summed over channels (Shrikumar et al., 2016)."""

    display_name = "Input x Gradient"
    summary = "input x gradient (channel-summed)"
    reference = "Shrikumar et al. Not Just a Black Box: Learning Important Features. arXiv:1605.01713"

    def _post(self, x: Tensor, grads: Tensor) -> Tensor:
        """Multiply the gradients by the input."""
        return grads * x


@register_method("guided_backprop")
class GuidedBackprop(Gradient):
    """Guided Backpropagation (Springenberg et al., 2015).

    Negative gradients are clamped at every activation module (ReLU, ReLU6, LeakyReLU, Hardtanh; for
    smooth activations such as GELU or SiLU the clamp acts on ``g * f'(x)``). Activations applied
    functionally (``F.relu``) cannot be seen and pass plain gradients.
    """

    display_name = "Guided Backprop"
    summary = "guided backpropagation: negative gradients clamped at every activation"
    reference = "Springenberg et al. Striving for Simplicity: The All Convolutional Net. ICLR-W 2015"

    def _attribute(
        self, x: Tensor, classes: ClassSet | Tensor | None, target: Tensor | int | None
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Compute the maps (see :meth:`Attributor._attribute`)."""
        with guided_activations(self.model, GuidedState(guided=True)):
            return super()._attribute(x, classes, target)


IGRule = Literal["gausslegendre", "uniform", "riemann_left", "riemann_right", "riemann_middle", "riemann_trapezoid"]


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
    if rule == "uniform":  # the plain mean over linspace(0, 1, steps), ends included (saliency, VAR authors)
        if steps < 2:
            raise ValueError(f"integrated gradients needs more steps than {steps} for rule {rule!r}")
        return i / (steps - 1), np.full(steps, 1.0 / steps)
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


def parse_memory(value: float | str | None) -> int | None:
    """A memory budget in bytes from a number of bytes or a string such as ``"8GB"``, ``"512MiB"``.

    Example:
        >>> parse_memory("8GB"), parse_memory("1.5 GiB"), parse_memory(None)
        (8000000000, 1610612736, None)
    """
    if value is None or isinstance(value, int | float):
        return None if value is None else int(value)
    text = value.strip().lower().replace(" ", "")
    units = {"kib": 2**10, "mib": 2**20, "gib": 2**30, "kb": 10**3, "mb": 10**6, "gb": 10**9, "b": 1}
    for unit, factor in units.items():
        if text.endswith(unit):
            try:
                return int(float(text[: -len(unit)]) * factor)
            except ValueError:
                break
    try:
        return int(float(text))
    except ValueError:
        raise ValueError(f"memory budget must be bytes or a size like '8GB', got {value!r}") from None


# (method, model class, device, dtype, input shape, K, budget) -> points per forward pass measured to fit
_CHUNK_CHOICE: dict[tuple[str, str, str, torch.dtype, tuple[int, ...], int, int], int] = {}


class _SampledGradient(Attributor):
    """Weighted sum of class gradients at S points around ``x``, evaluated in chunks of points.

    Each chunk holds ``chunk * B`` images in one forward pass and their K class gradients; the points are made
    chunk by chunk, so memory grows with the chunk, never with S.

    Args:
        model: The classifier.
        chunk_size: Points per forward pass (default 16).
        max_memory: A GPU memory budget (bytes, or ``"8GB"``): the first call measures the memory of one point
            with its K class gradients and picks the largest chunk that fits (``chunk_size`` is then ignored);
            CPU inputs use ``chunk_size``.
        **kwargs: See :class:`Attributor`.
    """

    def __init__(self, model: nn.Module, *, chunk_size: int = 16, max_memory: float | str | None = None,
                 **kwargs: Any) -> None:
        super().__init__(model, **kwargs)
        if chunk_size < 1:
            raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
        self.chunk_size, self.max_memory = chunk_size, parse_memory(max_memory)

    def _points(self, x: Tensor, start: int, stop: int) -> tuple[Tensor, Tensor]:
        """Points ``start:stop`` ``[s, B, C, H, W]`` and their weights ``[s]``."""
        raise NotImplementedError

    @property
    def _count(self) -> int:
        """The number of points S."""
        raise NotImplementedError

    def _post(self, x: Tensor, summed: Tensor) -> Tensor:
        """Turn the weighted gradient sum ``[K, B, C, H, W]`` into per-channel attributions."""
        return summed

    def _chunk_gradients(self, x: Tensor, cls: Tensor, start: int, stop: int) -> Tensor:
        """The weighted class gradients of points ``start:stop``, summed: ``[K, B, C, H, W]``."""
        b, k = cls.shape
        chunk, weights = self._points(x, start, stop)
        s = chunk.shape[0]
        xs = chunk.reshape(s * b, *x.shape[1:]).requires_grad_(True)
        out = self.model(xs)
        (g,) = self._gradients(out, cls.repeat(s, 1), [xs])
        return (g.view(k, s, *x.shape) * weights.to(g).view(1, s, 1, 1, 1, 1)).sum(1)

    def _attribute(
        self, x: Tensor, classes: ClassSet | Tensor | None, target: Tensor | int | None
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Compute the maps (see :meth:`Attributor._attribute`)."""
        with torch.inference_mode():
            logits, cls = self._forward(x, classes, target)
        total, start, chunk = x.new_zeros(cls.shape[1], *x.shape), 0, self.chunk_size
        if self.max_memory is not None and x.device.type == "cuda":
            key = (type(self).__name__, type(self.model).__name__, str(x.device), x.dtype, tuple(x.shape),
                   cls.shape[1], self.max_memory)
            chunk = _CHUNK_CHOICE.get(key, 0)
            if not chunk:  # measure one point with its K gradients, and keep its result
                torch.cuda.synchronize(x.device)
                base = torch.cuda.memory_allocated(x.device)
                torch.cuda.reset_peak_memory_stats(x.device)
                total += self._chunk_gradients(x, cls, 0, 1)
                per_point = max(1, torch.cuda.max_memory_allocated(x.device) - base)
                chunk = _CHUNK_CHOICE[key] = max(1, min(self._count, (self.max_memory - base) // per_point))
                start = 1
        for lo in range(start, self._count, chunk):
            total += self._chunk_gradients(x, cls, lo, min(lo + chunk, self._count))
        return self._per_sample(self._post(x, total)), cls, logits


Baseline = Literal["zero", "black", "blur"]


@register_method("integrated_gradients")
class IntegratedGradients(_SampledGradient):
    """Integrated Gradients (Sundararajan et al., 2017), channel-summed.

    ``(x - x0) * sum_i w_i grad f_c(x0 + alpha_i (x - x0))`` with the points and weights of ``rule``.

    Defaults and how they compare: attrdist takes 32 Gauss-Legendre points from the all-zero input;
    Captum's default is 50 Gauss-Legendre points from zeros; the VAR authors' ``src/ig.py`` averages 128
    points of ``linspace(0, 1)``, both ends included (``steps=128, rule="uniform"``), as the ``saliency``
    package does. The input is the model's normalised tensor, so ``baseline="zero"`` is the mean colour
    of the normalisation, not black.

    Args:
        model: The classifier.
        steps: Number of integration points (default 32).
        baseline: ``"zero"`` (default: the all-zero normalised input, i.e. the normalisation's mean colour),
            ``"black"`` (the black image in the model's normalisation; needs ``normalization``), ``"blur"``
            (a Gaussian blur of the input, ``blur_sigma`` pixels), a number, or a tensor broadcastable to
            the input.
        rule: Quadrature rule (default ``"gausslegendre"``, Captum's); ``"uniform"`` is the mean over
            ``linspace(0, 1, steps)`` (the VAR authors' and the ``saliency`` package's).
        normalization: ``(mean, std)`` per channel of the model's input normalisation (set by
            ``get_method`` when given a :class:`~attrdist.models.LoadedModel`); needed for ``"black"``.
        blur_sigma: Standard deviation of the ``"blur"`` baseline in pixels (default 10).
        chunk_size: Points per forward pass.
        max_memory: A GPU memory budget that picks the chunk size (see :class:`_SampledGradient`).
        **kwargs: See :class:`Attributor`.

    Raises:
        ValueError: On an unknown baseline, or ``"black"`` without ``normalization``.
    """

    display_name = "Integrated Gradients"
    summary = "integrated gradients, 32 Gauss-Legendre steps from the zero (mean-colour) input; black/blur options"
    reference = "Sundararajan, Taly, Yan. Axiomatic Attribution for Deep Networks. ICML 2017"
    uses_normalization = True

    def __init__(
        self, model: nn.Module, *, steps: int = 32, baseline: Baseline | float | Tensor = "zero",
        rule: IGRule = "gausslegendre", normalization: tuple[tuple[float, ...], tuple[float, ...]] | None = None,
        blur_sigma: float = 10.0, chunk_size: int = 16, max_memory: float | str | None = None, **kwargs: object,
    ) -> None:
        super().__init__(model, chunk_size=chunk_size, max_memory=max_memory, **kwargs)
        self.alphas, self.weights = ig_rule(steps, rule)
        if isinstance(baseline, str):
            if baseline not in ("zero", "black", "blur"):
                raise ValueError(f"unknown baseline {baseline!r}; use 'zero', 'black', 'blur', a number or a tensor")
            if baseline == "black" and normalization is None:
                raise ValueError("baseline='black' needs the model's input normalisation: pass normalization=(mean, "
                                 "std), or give get_method a LoadedModel (attrdist.load_model) instead of the module")
            if not blur_sigma > 0:
                raise ValueError(f"blur_sigma must be positive, got {blur_sigma}")
        self.baseline, self.normalization, self.blur_sigma = baseline, normalization, blur_sigma

    def _baseline(self, x: Tensor) -> Tensor:
        """The baseline ``x0`` for the input batch ``x`` (same shape)."""
        if self.baseline == "zero":
            return torch.zeros_like(x)
        if self.baseline == "black":
            assert self.normalization is not None, "__init__ refuses baseline='black' without normalization"
            mean, std = (torch.as_tensor(v, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
                         for v in self.normalization)
            return ((0.0 - mean) / std).expand_as(x)
        if self.baseline == "blur":
            return _gaussian_blur(x, self.blur_sigma)
        return torch.as_tensor(self.baseline, dtype=x.dtype, device=x.device).expand_as(x)

    @property
    def _count(self) -> int:
        return len(self.alphas)

    def _points(self, x: Tensor, start: int, stop: int) -> tuple[Tensor, Tensor]:
        """Points ``start:stop`` on the straight path from the baseline to ``x``."""
        x0 = self._baseline(x)
        a = torch.as_tensor(self.alphas[start:stop], dtype=x.dtype, device=x.device).view(-1, 1, 1, 1, 1)
        return x0 + a * (x - x0), torch.as_tensor(self.weights[start:stop])

    def _post(self, x: Tensor, summed: Tensor) -> Tensor:
        """Multiply the averaged gradient by ``x - x0``."""
        return summed * (x - self._baseline(x))


def _gaussian_blur(x: Tensor, sigma: float) -> Tensor:
    """Per-channel Gaussian blur of ``[B, C, H, W]`` (radius ``3 sigma``, reflected borders, kept constant colours).

    Normalisation is affine per channel, so blurring the normalised input is normalising the blurred image.
    """
    return smooth(x, 2 * gaussian_radius(sigma, *x.shape[-2:]) + 1, sigma, "gaussian", "reflect")


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

    display_name = "SmoothGrad"
    summary = "mean gradient over 25 noisy copies (noise 15% of the value range)"
    reference = "Smilkov et al. SmoothGrad: removing noise by adding noise. arXiv:1706.03825"

    def __init__(
        self, model: nn.Module, *, samples: int = 25, noise_level: float = 0.15, seed: int = 0,
        chunk_size: int = 16, max_memory: float | str | None = None, **kwargs: object,
    ) -> None:
        super().__init__(model, chunk_size=chunk_size, max_memory=max_memory, **kwargs)
        if samples < 1 or noise_level < 0:
            raise ValueError("smoothgrad needs samples >= 1 and noise_level >= 0")
        self.samples, self.noise_level, self.seed = samples, noise_level, seed

    @property
    def _count(self) -> int:
        return self.samples

    def _points(self, x: Tensor, start: int, stop: int) -> tuple[Tensor, Tensor]:
        """Noisy copies ``start:stop`` of ``x``.

        The same seeded draws for every image: results depend neither on the batch nor on the chunking.
        """
        gen = torch.Generator(device="cpu").manual_seed(self.seed)
        noise = torch.randn((self.samples, 1, *x.shape[1:]), generator=gen, dtype=x.dtype)[start:stop].to(x.device)
        flat = x.flatten(1)
        span = (flat.amax(1) - flat.amin(1)).view(1, -1, 1, 1, 1)
        return x + noise * self.noise_level * span, torch.full((stop - start,), 1.0 / self.samples)
