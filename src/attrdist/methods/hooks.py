"""Hooks as context managers: every modification of a model is undone on exit, also after an error."""

from __future__ import annotations

import contextlib
import difflib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Protocol, cast

import torch
from torch import Tensor, nn

__all__ = [
    "Capture",
    "GuidedState",
    "capture_output",
    "guided_activations",
    "model_scope",
    "resolve_module",
]


def resolve_module(model: nn.Module, layer: str | nn.Module) -> nn.Module:
    """Find a sub-module by dotted name (or check that a module belongs to the model).

    Args:
        model: The model.
        layer: A dotted name as in ``model.named_modules()`` (``"layer4"``, ``"features.7.2"``), or a
            module of the model.

    Returns:
        The module.

    Raises:
        ValueError: If no such module exists; the message lists the closest names.
    """
    if isinstance(layer, nn.Module):
        if not any(m is layer for m in model.modules()):
            raise ValueError(f"layer {type(layer).__name__} is not a sub-module of the model")
        return layer
    modules: dict[str, nn.Module] = dict(model.named_modules())
    if layer in modules:
        found: nn.Module = modules[layer]
        return found
    close = difflib.get_close_matches(layer, [n for n in modules if n], n=5, cutoff=0.4)
    hint = f"; closest: {', '.join(close)}" if close else ""
    raise ValueError(f"the model has no layer {layer!r}{hint}")


class _InPlace(Protocol):
    """A module with an ``inplace`` switch (``nn.ReLU``, ``nn.Dropout``, ...)."""

    inplace: bool


@contextlib.contextmanager
def model_scope(model: nn.Module) -> Iterator[nn.Module]:
    """Run attribution on ``model`` in eval mode without parameter gradients, then restore it.

    Parameters get ``requires_grad=False`` during the call (attributions only need input and activation
    gradients), activations that work in place are switched to out-of-place; the train/eval mode of every
    module, the ``requires_grad`` flags and the ``inplace`` flags are restored on exit, also after an error.

    Args:
        model: The model.

    Yields:
        The same model.
    """
    modes = [(m, m.training) for m in model.modules()]
    flags = [(p, p.requires_grad) for p in model.parameters()]
    inplace = [(cast(_InPlace, m), flag) for m in model.modules()
               if isinstance(flag := getattr(m, "inplace", None), bool)]
    try:
        model.eval()
        for p, _ in flags:
            p.requires_grad_(False)
        for switch, _ in inplace:
            switch.inplace = False
        yield model
    finally:
        for m, mode in modes:
            m.training = mode
        for p, flag in flags:
            p.requires_grad_(flag)
        for switch, flag in inplace:
            switch.inplace = flag


@dataclass
class Capture:
    """Output of a hooked module, as seen in the last forward pass (kept in the autograd graph)."""

    module: nn.Module
    outputs: list[Tensor] = field(default_factory=list)

    @property
    def output(self) -> Tensor:
        """The module's output of the last forward pass.

        Raises:
            RuntimeError: If the module was not called, or was called more than once.
        """
        if len(self.outputs) != 1:
            raise RuntimeError(
                f"layer {type(self.module).__name__} ran {len(self.outputs)} times in one forward pass; "
                "choose a layer that runs exactly once"
            )
        return self.outputs[0]


@contextlib.contextmanager
def capture_output(module: nn.Module, as_leaf: bool = False) -> Iterator[Capture]:
    """Record the output tensor of ``module`` in every forward pass inside the context.

    Args:
        module: The module to watch.
        as_leaf: Replace the output by a detached copy that requires grad, so that the autograd graph
            starts at this layer (nothing below it is recorded). The forward values are unchanged.

    Yields:
        A :class:`Capture` whose ``outputs`` are filled during forward passes.
    """
    cap = Capture(module)

    def hook(mod: nn.Module, args: tuple[object, ...], out: object) -> Tensor:
        if not isinstance(out, Tensor):
            raise TypeError(f"layer {type(mod).__name__} returns {type(out).__name__}, not a tensor")
        if as_leaf:
            out = out.detach().requires_grad_(True)
        cap.outputs.append(out)
        # the model goes on with a copy, so an in-place op after the layer (DenseNet's F.relu(inplace=True))
        # cannot change the captured activations or their gradient
        return out.clone()

    handle = module.register_forward_hook(hook)
    try:
        yield cap
    finally:
        handle.remove()


@dataclass
class GuidedState:
    """Switch read by the guided backward at backward time (plain or guided gradient)."""

    guided: bool = True


#: ``x -> f'(x)`` of an activation (a mask or the derivative's values).
_Derivative = Callable[[Tensor], Tensor]


class _GuidedContext(Protocol):
    """The autograd context of :class:`_GuidedGrad`: its saved tensor and the two values it stores on it."""

    saved_tensors: tuple[Tensor, ...]
    deriv_fn: _Derivative | None
    state: GuidedState

    def save_for_backward(self, *tensors: Tensor | None) -> None: ...


class _GuidedGrad(torch.autograd.Function):
    """Identity on the activation's output (no copy); backward passes ``g * f'(x)`` to its input.

    The gradient is clamped at 0 while guided. ``saved`` is the input ``x`` (``deriv_fn`` computes ``f'(x)``
    in backward) or, for smooth activations, the precomputed ``f'(x)`` (``deriv_fn`` is ``None``).
    """

    @staticmethod
    def forward(x: Tensor, saved: Tensor, y: Tensor, deriv_fn: _Derivative | None, state: GuidedState) -> Tensor:
        return y.view_as(y)

    @staticmethod
    def setup_context(
        ctx: _GuidedContext, inputs: tuple[Tensor, Tensor, Tensor, _Derivative | None, GuidedState], output: Tensor,
    ) -> None:
        _, saved, _, deriv_fn, state = inputs
        ctx.save_for_backward(saved)
        ctx.deriv_fn, ctx.state = deriv_fn, state

    @staticmethod
    def backward(ctx: _GuidedContext, grad: Tensor) -> tuple[Tensor, None, None, None, None]:
        (saved,) = ctx.saved_tensors
        deriv_fn = ctx.deriv_fn
        gx = grad * (saved if deriv_fn is None else deriv_fn(saved))
        if ctx.state.guided:
            gx = gx.clamp(min=0)
        return gx, None, None, None, None


def _piecewise_derivative(module: nn.Module) -> _Derivative | None:
    """``x -> f'(x)`` of a piecewise-linear activation (evaluated in backward), or ``None``."""
    if isinstance(module, nn.ReLU):
        return lambda x: x > 0
    if isinstance(module, nn.ReLU6):
        return lambda x: (x > 0) & (x < 6)
    if isinstance(module, nn.Hardtanh):
        lo, hi = module.min_val, module.max_val
        return lambda x: (x > lo) & (x < hi)
    if isinstance(module, nn.LeakyReLU):
        slope = module.negative_slope
        return lambda x: torch.where(x > 0, 1.0, slope).to(x.dtype)
    return None


#: Activations treated by guided backprop. Piecewise-linear ones use their exact derivative mask; smooth
#: ones (GELU, SiLU, ...) use their derivative f'(x), and the guided clamp acts on g * f'(x).
GUIDED_ACTIVATIONS: tuple[type[nn.Module], ...] = (
    nn.ReLU, nn.ReLU6, nn.Hardtanh, nn.LeakyReLU, nn.ELU, nn.GELU, nn.SiLU, nn.Softplus, nn.Hardswish,
    nn.Mish, nn.CELU, nn.SELU,
)


@contextlib.contextmanager
def guided_activations(model: nn.Module, state: GuidedState) -> Iterator[list[nn.Module]]:
    """Make every activation module of ``model`` pass guided gradients (Springenberg et al., 2015).

    The forward output is unchanged; in backward, the gradient reaching an activation's input becomes
    ``max(0, g * f'(x))`` while ``state.guided`` is true, and the plain ``g * f'(x)`` otherwise. Works for
    modules reused several times per forward pass (EfficientNet's shared ReLU6) and under batched VJPs.
    Activations called functionally (``F.relu``) are not seen.

    Args:
        model: The model.
        state: The switch between guided and plain gradients.

    Yields:
        The hooked activation modules (empty if the model has none).
    """
    mods = [m for m in model.modules() if isinstance(m, GUIDED_ACTIVATIONS)]

    def hook(mod: nn.Module, args: tuple[Tensor, ...], out: Tensor) -> Tensor:
        x = args[0]
        deriv_fn = _piecewise_derivative(mod)
        if deriv_fn is not None:
            return cast(Tensor, _GuidedGrad.apply(x, x.detach(), out.detach(), deriv_fn, state))
        with torch.enable_grad():
            xd = x.detach().requires_grad_(True)
            (deriv,) = torch.autograd.grad(mod.forward(xd).sum(), xd)  # forward(): no hook
        return cast(Tensor, _GuidedGrad.apply(x, deriv.detach(), out.detach(), None, state))

    handles = [m.register_forward_hook(hook) for m in mods]
    try:
        yield mods
    finally:
        for h in handles:
            h.remove()
