"""The method engine: one forward pass, then the K class gradients as batched vector-Jacobian products.

Every method is a small class over :class:`Attributor`, which owns input checks, class-set resolution,
model scoping (eval mode, hooks removed, flags restored) and the class-gradient engine
:func:`class_gradients`.
"""

from __future__ import annotations

import abc
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..classes import ClassSet, parse_class_set, validate_classes
from ..registry import Registry
from .hooks import model_scope

__all__ = [
    "METHODS",
    "Attribution",
    "Attributor",
    "ClassesLike",
    "class_gradients",
    "get_method",
    "register_method",
]

VJPMode = Literal["auto", "batched", "sequential"]
ClassesLike = Tensor | ClassSet | str | Sequence[int]

#: The single list of attribution methods.
METHODS: Registry[type[Attributor]] = Registry("method")


def register_method(name: str):  # noqa: ANN201
    """Register an :class:`Attributor` subclass under ``name`` (sets its ``name`` attribute)."""

    def decorate(cls: type[Attributor]) -> type[Attributor]:
        cls.name = name
        return METHODS.register(name)(cls)

    return decorate


def get_method(name: str, model: nn.Module, **options: object) -> Attributor:
    """Build a registered method for ``model``.

    Args:
        name: A registered method name (see ``attrdist methods``).
        model: The classifier, returning logits ``[B, num_classes]``, or a
            :class:`~attrdist.models.LoadedModel` (its input normalisation then reaches the methods that use
            it, such as integrated gradients with ``baseline="black"``).
        **options: Options of the method class.

    Returns:
        The method, called as ``method(x, classes)``.

    Raises:
        KeyError: If the method name is unknown.
    """
    cls = METHODS.get(name)
    preprocess = getattr(model, "preprocess", None)
    if not isinstance(model, nn.Module) and preprocess is not None:  # a LoadedModel
        if cls.uses_normalization:
            options.setdefault("normalization", (tuple(preprocess.mean), tuple(preprocess.std)))
        model = model.model  # type: ignore[attr-defined]
    return cls.create(model, **options)


@dataclass
class Attribution:
    """Raw maps of K classes for a batch, with what produced them.

    Attributes:
        maps: Raw maps ``[B, K, H, W]`` (``[B, K, C, H, W]`` with ``keep_channels``).
        classes: The class set ``[B, K]``.
        logits: Model outputs at the unmodified input ``[B, num_classes]``.
        vjp: How the K gradients were computed: ``"batched"``, ``"sequential"`` or ``"none"``.
    """

    maps: Tensor
    classes: Tensor
    logits: Tensor
    vjp: str = "none"


# (method, model class, device type, dtype, input shape, K) -> the mode measured fastest
_VJP_CHOICE: dict[tuple, str] = {}


def _onehots(outputs: Tensor, classes: Tensor) -> Tensor:
    k = classes.shape[1]
    seeds = outputs.new_zeros(k, *outputs.shape)
    seeds.scatter_(2, classes.t().unsqueeze(-1), 1.0)
    return seeds


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def class_gradients(
    outputs: Tensor,
    classes: Tensor,
    inputs: Sequence[Tensor],
    mode: Literal["batched", "sequential"] = "batched",
    retain_graph: bool = False,
) -> list[Tensor]:
    """Gradients of ``outputs[b, classes[b, k]]`` w.r.t. each input, for all K classes.

    Args:
        outputs: Logits ``[B, num_classes]`` of one forward pass.
        classes: Class indices ``[B, K]``.
        inputs: Tensors in the graph of ``outputs`` (the image, layer activations).
        mode: ``"batched"``: one ``torch.autograd.grad(..., is_grads_batched=True)`` call over K one-hot
            seeds; ``"sequential"``: K calls that reuse the graph.
        retain_graph: Keep the graph after the call.

    Returns:
        One tensor ``[K, *input.shape]`` per input.
    """
    seeds = _onehots(outputs, classes)
    if mode == "batched" and seeds.shape[0] > 1:
        return list(torch.autograd.grad(outputs, inputs, seeds, retain_graph=retain_graph, is_grads_batched=True))
    per_class = [
        torch.autograd.grad(outputs, inputs, seed, retain_graph=retain_graph or i < len(seeds) - 1)
        for i, seed in enumerate(seeds)
    ]
    return [torch.stack(g) for g in zip(*per_class, strict=True)]


class Attributor(abc.ABC):
    """Base of every attribution method.

    Subclasses implement :meth:`attribute`; the base checks the input, resolves the class set, scopes
    the model (:func:`~attrdist.methods.hooks.model_scope`) and computes the K class gradients.

    Args:
        model: A classifier returning logits ``[B, num_classes]``.
        vjp: ``"auto"`` (measure batched and sequential VJPs once per input shape and keep the faster
            one that works), ``"batched"`` or ``"sequential"``.
        keep_channels: Return ``[B, K, C, H, W]`` instead of channel-summed maps (input-space methods).
    """

    name: ClassVar[str] = ""
    #: One-line description shown by ``attrdist methods``.
    summary: ClassVar[str] = ""
    #: The paper the method comes from.
    reference: ClassVar[str] = ""
    #: True when the map does not depend on the explained class (VAR warns for such methods).
    class_agnostic: ClassVar[bool] = False
    #: Architectures the method applies to: ``"cnn"`` and/or ``"vit"``.
    applies_to: ClassVar[frozenset[str]] = frozenset({"cnn", "vit"})
    #: Whether the method takes the model's input normalisation (``normalization=(mean, std)``).
    uses_normalization: ClassVar[bool] = False

    @classmethod
    def create(cls, model: nn.Module, **options: object) -> Attributor:
        """Build the method for ``model``.

        :func:`get_method` calls this; a method may pick an implementation per architecture, as ``gradcam``
        does for ViTs.
        """
        return cls(model, **options)  # type: ignore[arg-type]

    def __init__(self, model: nn.Module, *, vjp: VJPMode = "auto", keep_channels: bool = False) -> None:
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
        if vjp not in ("auto", "batched", "sequential"):
            raise ValueError(f"vjp must be 'auto', 'batched' or 'sequential', got {vjp!r}")
        self.model = model
        self.vjp = vjp
        self.keep_channels = keep_channels
        self._last_vjp = "none"

    def __repr__(self) -> str:
        return f"{type(self).__name__}(model={type(self.model).__name__}, vjp={self.vjp!r})"

    def __call__(self, x: Tensor, classes: ClassesLike = "top3+worst") -> Tensor:
        """Raw maps of the K classes.

        Args:
            x: Input batch ``[B, C, H, W]``.
            classes: ``[B, K]`` indices, a class-set spec or a list of classes shared by the batch.

        Returns:
            Raw maps ``[B, K, H, W]``.
        """
        return self.explain(x, classes).maps

    def explain(
        self, x: Tensor, classes: ClassesLike = "top3+worst", target: Tensor | int | None = None
    ) -> Attribution:
        """Raw maps of the K classes, with the class set and the logits.

        Args:
            x: Input batch ``[B, C, H, W]``.
            classes: ``[B, K]`` indices, a class-set spec (resolved from this forward pass's logits) or a
                list of classes shared by the batch.
            target: Target class per sample for class-set specs; default: the predicted class.

        Returns:
            The :class:`Attribution`.

        Raises:
            ValueError: On a wrong input shape, non-finite input or invalid classes.
        """
        x = _check_input(x)
        if isinstance(classes, str | ClassSet):
            rule: ClassSet | Tensor = parse_class_set(classes)
        elif isinstance(classes, Tensor):
            rule = validate_classes(classes.to(x.device))
            if rule.shape[0] != x.shape[0]:
                raise ValueError(f"classes has {rule.shape[0]} rows for a batch of {x.shape[0]}")
        else:
            rule = validate_classes(torch.as_tensor([list(classes)], device=x.device).expand(x.shape[0], -1))
        with model_scope(self.model):
            maps, cls, logits = self.attribute(x, rule, target)
        return Attribution(maps=maps, classes=cls, logits=logits, vjp=self._last_vjp)

    @abc.abstractmethod
    def attribute(
        self, x: Tensor, classes: ClassSet | Tensor, target: Tensor | int | None
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Compute the maps inside the model scope.

        Args:
            x: Checked input ``[B, C, H, W]``.
            classes: A class-set rule or validated indices ``[B, K]``.
            target: Target class per sample for class-set rules.

        Returns:
            ``(maps, classes [B, K], logits [B, num_classes])``.
        """

    # helpers for subclasses -------------------------------------------------------------------------

    def forward(
        self, x: Tensor, classes: ClassSet | Tensor, target: Tensor | int | None
    ) -> tuple[Tensor, Tensor]:
        """Run the model once and resolve the class set from its logits.

        Returns:
            ``(logits, classes [B, K])``.
        """
        logits = self.model(x)
        if not isinstance(logits, Tensor) or logits.dim() != 2:
            shape = tuple(logits.shape) if isinstance(logits, Tensor) else type(logits).__name__
            raise ValueError(f"the model must return logits [B, num_classes], got {shape}")
        return logits, self.resolve(classes, logits, target)

    @staticmethod
    def resolve(classes: ClassSet | Tensor, logits: Tensor, target: Tensor | int | None) -> Tensor:
        """Resolve a class-set rule (or check indices) against logits ``[B, num_classes]``."""
        if isinstance(classes, ClassSet):
            return classes(logits, target)
        return validate_classes(classes, logits.shape[1])

    def gradients(
        self, outputs: Tensor, classes: Tensor, inputs: Sequence[Tensor], retain_graph: bool = False
    ) -> list[Tensor]:
        """:func:`class_gradients` with this method's VJP mode (``"auto"`` measures once and caches)."""
        mode = self.vjp
        if mode == "auto":
            key = (
                type(self).__name__, type(self.model).__name__, outputs.device.type, outputs.dtype,
                tuple(inputs[0].shape), classes.shape[1],
            )
            mode = _VJP_CHOICE.get(key, "")
            if not mode:
                return self._measure(key, outputs, classes, inputs, retain_graph)
        try:
            grads = class_gradients(outputs, classes, inputs, mode, retain_graph)  # type: ignore[arg-type]
        except RuntimeError as err:
            if mode != "batched":
                raise
            warnings.warn(f"batched VJP failed ({err}); using sequential VJPs", RuntimeWarning, stacklevel=2)
            grads = class_gradients(outputs, classes, inputs, "sequential", retain_graph)
            mode = "sequential"
        self._last_vjp = mode
        return grads

    def _measure(
        self, key: tuple, outputs: Tensor, classes: Tensor, inputs: Sequence[Tensor], retain_graph: bool
    ) -> list[Tensor]:
        if classes.shape[1] < 2:
            self._last_vjp = "sequential"
            return class_gradients(outputs, classes, inputs, "sequential", retain_graph)
        timings: dict[str, float] = {}
        result: list[Tensor] | None = None
        # sequential, batched, sequential again: the first pass also pays one-time warm-up costs
        for i, mode in enumerate(("sequential", "batched", "sequential")):
            _sync(outputs.device)
            start = time.perf_counter()
            try:
                grads = class_gradients(outputs, classes, inputs, mode, retain_graph=i < 2 or retain_graph)  # type: ignore[arg-type]
            except RuntimeError:
                continue
            _sync(outputs.device)  # CUDA runs asynchronously: time the work, not its launch
            timings[mode] = min(timings.get(mode, float("inf")), time.perf_counter() - start)
            result = grads
        assert result is not None, "sequential VJPs cannot fail where the forward pass succeeded"
        _VJP_CHOICE[key] = min(timings, key=timings.__getitem__)
        self._last_vjp = _VJP_CHOICE[key]
        return result

    def to_input_size(self, maps: Tensor, size: tuple[int, int], mode: str = "bilinear") -> Tensor:
        """Upsample ``[B, K, h, w]`` maps to the input size."""
        if tuple(maps.shape[-2:]) == tuple(size):
            return maps
        b, k = maps.shape[:2]
        flat = maps.reshape(b * k, 1, *maps.shape[-2:])
        align = False if mode in ("bilinear", "bicubic") else None
        return F.interpolate(flat, size=size, mode=mode, align_corners=align).reshape(b, k, *size)

    def reduce_channels(self, grads: Tensor) -> Tensor:
        """``[K, B, C, H, W]`` -> ``[B, K, H, W]`` (or ``[B, K, C, H, W]`` with ``keep_channels``)."""
        g = grads.transpose(0, 1)
        return g if self.keep_channels else g.sum(2)


def _check_input(x: Tensor) -> Tensor:
    if not isinstance(x, Tensor):
        raise TypeError(f"x must be a torch.Tensor, got {type(x).__name__}")
    if x.dim() != 4:
        raise ValueError(f"x must have shape [B, C, H, W], got {tuple(x.shape)}")
    if not x.dtype.is_floating_point:
        raise ValueError(f"x must be a floating-point tensor, got {x.dtype}")
    if not torch.isfinite(x).all():
        raise ValueError("x contains NaN or inf values")
    return x.detach()
