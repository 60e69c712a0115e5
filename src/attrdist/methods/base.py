"""The method engine: one forward pass, then the K class gradients as batched vector-Jacobian products.

Every method is a small class over :class:`Attributor`, which owns the public verb
:meth:`Attributor.attribute` (input checks, class-set and target resolution, model scoping: eval mode,
hooks removed, flags restored) and the class-gradient engine :func:`class_gradients`. A method overrides
one private hook, :meth:`Attributor._attribute`.
"""

from __future__ import annotations

import abc
import contextvars
import inspect
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Literal, TypedDict, TypeVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..classes import ClassesLike, ClassSet, class_rule, resolve_classes
from ..models.vit import architecture_of
from ..options import BENCHMARK_METHODS, DEFAULT_METHODS  # re-exported: attrdist.methods.DEFAULT_METHODS
from ..registry import Registry
from .hooks import model_scope

if TYPE_CHECKING:
    from ..models import LoadedModel

__all__ = [
    "BENCHMARK_METHODS",
    "DEFAULT_METHODS",
    "METHODS",
    "Attribution",
    "Attributor",
    "ClassesLike",
    "MethodNotApplicableError",
    "MethodOptions",
    "architecture_of",
    "class_gradients",
    "get_method",
    "list_methods",
    "register_method",
]

VJPMode = Literal["auto", "batched", "sequential"]


class MethodOptions(TypedDict, total=False):
    """The keyword options of :class:`Attributor` that every method passes on to it (``**kwargs``)."""

    vjp: VJPMode
    autocast: str | None

#: How :func:`class_gradients` computes the K VJPs (``"auto"`` picks one of these).
_GradMode = Literal["batched", "sequential"]

#: The single list of attribution methods.
METHODS: Registry[type[Attributor]] = Registry("method")



class MethodNotApplicableError(ValueError):
    """The method does not apply to the model's architecture (the message names the methods that do)."""


_A = TypeVar("_A", bound="type[Attributor]")


def register_method(name: str) -> Callable[[_A], _A]:
    """Register an :class:`Attributor` subclass under ``name`` (sets its ``name`` attribute).

    Example:
        >>> @register_method("my_saliency")            # doctest: +SKIP
        ... class MySaliency(Gradient):
        ...     def _post(self, x, grads): return grads.abs()
    """

    def decorate(cls: _A) -> _A:
        cls.name = name
        if "display_name" not in cls.__dict__:
            cls.display_name = name
        METHODS.register(name)(cls)
        return cls

    return decorate


def list_methods(architecture: str | None = None) -> list[str]:
    """Names of the registered methods, optionally only those for ``"cnn"`` or ``"vit"`` models.

    Example:
        >>> "rollout" in list_methods("vit"), "rollout" in list_methods("cnn")
        (True, False)
    """
    return [n for n, cls in METHODS.items() if architecture is None or architecture in cls.applies_to]


def get_method(name: str, model: nn.Module | LoadedModel, **options: object) -> Attributor:
    """Build a registered method for ``model``.

    Args:
        name: A registered method name (see ``attrdist methods``).
        model: The classifier, returning logits ``[B, num_classes]``, a ``transformers`` image classifier
            (wrapped to return its logits), or a :class:`~attrdist.models.LoadedModel` (its input normalisation
            then reaches the methods that use it, such as integrated gradients with ``baseline="black"``).
        **options: Options of the method class.

    Returns:
        The method; ``method.attribute(x, target=..., classes=...)`` computes maps.

    Raises:
        KeyError: If the method name is unknown.
        MethodNotApplicableError: If the method does not apply to the model's architecture.
    """
    cls = METHODS.get(name)
    preprocess = getattr(model, "preprocess", None)
    # the model's class names travel with the method into its results (VARResult.class_names)
    labels = getattr(model, "class_names", None) or getattr(getattr(model, "config", None), "id2label", None)
    if not isinstance(model, nn.Module):
        if preprocess is None:
            raise TypeError(f"model must be a torch.nn.Module or a LoadedModel, got {type(model).__name__}")
        if cls.uses_normalization:  # a LoadedModel
            options.setdefault("normalization", (tuple(preprocess.mean), tuple(preprocess.std)))
        model = model.model
    from ..models.hf import as_classifier

    model = as_classifier(model)  # a transformers model returns its logits
    arch = architecture_of(model)
    if arch not in cls.applies_to:
        kind = {"vit": "a Vision Transformer", "cnn": "a CNN"}[arch]
        raise MethodNotApplicableError(
            f"method {name!r} applies to {'/'.join(sorted(cls.applies_to))} models, and "
            f"{type(model).__name__} is {kind}; methods for it: {', '.join(list_methods(arch))}"
        )
    method = cls.create(model, **options)
    method._given = dict(options)
    if isinstance(labels, dict):  # transformers' id2label
        labels = [str(labels[i]) for i in sorted(labels)] if sorted(labels) == list(range(len(labels))) else None
    method.class_names = list(labels) if labels else None
    return method


@dataclass(kw_only=True)
class Attribution:
    """Raw maps of K classes for a batch, with what produced them.

    Attributes:
        maps: Raw maps ``[B, K, H, W]``, channel-summed, one per class of ``classes``.
        classes: The class set ``[B, K]`` (class ids).
        target: The explained class per sample ``[B]`` (a class id in ``classes``).
        logits: Model outputs at the unmodified input ``[B, num_classes]``.
        method: The method's name.
        vjp: How the K gradients were computed: ``"batched"``, ``"sequential"`` or ``"none"``.
        channel_maps: Raw per-channel maps ``[B, K, C, H, W]`` of input-space methods, else ``None``.
    """

    maps: Tensor
    classes: Tensor
    target: Tensor
    logits: Tensor
    method: str = ""
    vjp: str = "none"
    channel_maps: Tensor | None = None


# (method, model class, device type, dtype, input shape, K) -> the mode measured fastest
_VJPKey = tuple[str, str, str, torch.dtype, tuple[int, ...], int]
_VJP_CHOICE: dict[_VJPKey, _GradMode] = {}


@dataclass
class _Call:
    """What one :meth:`Attributor.attribute` call did (per call, so a method holds no mutable state)."""

    vjp: str = "none"


_CURRENT: contextvars.ContextVar[_Call | None] = contextvars.ContextVar("attrdist_call", default=None)


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

    Users call :meth:`attribute`; a method implements the private hook :meth:`_attribute`. The base
    checks the input, resolves the class set and the target, scopes the model
    (:func:`~attrdist.methods.hooks.model_scope`) and computes the K class gradients (:meth:`_gradients`).

    Args:
        model: A classifier returning logits ``[B, num_classes]``.
        vjp: ``"auto"`` (measure batched and sequential VJPs once per input shape and keep the faster
            one that works), ``"batched"`` or ``"sequential"``.
        autocast: ``None`` (the model's own precision) or ``"bfloat16"``/``"float16"``: run the attribution
            under ``torch.autocast`` (faster on GPUs; the maps deviate from float32 by what
            ``benchmarks/gpu_throughput.py`` measures). Maps and logits come back in float32.
    """

    #: The registered name (set by :func:`register_method`); an adapter names each instance.
    name: str = ""
    #: The name figures and reports show ("Guided Backprop"); default: :attr:`name`.
    display_name: ClassVar[str] = ""
    #: One-line description shown by ``attrdist methods``.
    summary: ClassVar[str] = ""
    #: The paper the method comes from.
    reference: ClassVar[str] = ""
    #: True when the map does not depend on the explained class (VAR warns for such methods).
    class_agnostic: ClassVar[bool] = False
    #: Architectures the method applies to: ``"cnn"`` and/or ``"vit"`` (:func:`get_method` refuses others).
    applies_to: ClassVar[frozenset[str]] = frozenset({"cnn", "vit"})
    #: Whether the method takes the model's input normalisation (``normalization=(mean, std)``).
    uses_normalization: ClassVar[bool] = False
    #: The model's class names, one per output, when :func:`get_method` knows them (results carry them), else None.
    class_names: list[str] | None = None
    #: The options :func:`get_method` built the method with (what :meth:`settings` reports where no attribute holds
    #: an option's value).
    _given: dict[str, object]

    def __init__(self, model: nn.Module, *, vjp: VJPMode = "auto", autocast: str | None = None) -> None:
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
        if vjp not in ("auto", "batched", "sequential"):
            raise ValueError(f"vjp must be 'auto', 'batched' or 'sequential', got {vjp!r}")
        if autocast not in (None, "float32", "bfloat16", "float16"):
            raise ValueError(f"autocast must be None, 'bfloat16' or 'float16', got {autocast!r}")
        self.model = model
        self.vjp = vjp
        self.autocast = None if autocast == "float32" else autocast

    @classmethod
    def create(cls, model: nn.Module, **options: Any) -> Attributor:
        """Build the method for ``model``.

        :func:`get_method` calls this; a method may pick an implementation per architecture, as ``gradcam``
        does for ViTs.
        """
        return cls(model, **options)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(model={type(self.model).__name__}, vjp={self.vjp!r})"

    def settings(self) -> dict[str, object]:
        """Every keyword option of this method's constructors with the value in use, as plain values.

        What a benchmark run records beside its configuration, so that a result names each setting that changes a
        number, defaults included (a layer is given by its dotted name in the model).

        Example:
            >>> get_method("gradcam", torchvision.models.resnet18()).settings()["relu"]  # doctest: +SKIP
            True
        """
        names = {id(m): n for n, m in self.model.named_modules()}
        given = getattr(self, "_given", {})
        out: dict[str, object] = {"method": self.name}
        for cls in type(self).__mro__:
            init = cls.__dict__.get("__init__")
            if init is None or cls is object:
                continue
            for name, p in inspect.signature(init).parameters.items():
                if p.kind is not p.KEYWORD_ONLY or name in out:
                    continue
                # the value in use where the method keeps it under the option's name (a resolved layer), else
                # what was asked for, else the default
                value = getattr(self, name) if hasattr(self, name) else given.get(name, p.default)
                out[name] = _plain(value, names)
        return out

    def attribute(
        self, inputs: Tensor, target: Tensor | int | None = None, classes: ClassesLike | None = None
    ) -> Attribution:
        """Raw maps of the target class, or of every class of a class set.

        Args:
            inputs: Input batch ``[B, C, H, W]``.
            target: The explained class per sample (``[B]`` or an int); default: the predicted class (for a
                predefined class set, its most probable class).
            classes: ``None`` (the target only, ``K = 1``), a class-set spec (``"top3+worst"``, resolved from
                this forward pass's logits), a list of classes shared by the batch, or ``[B, K]`` indices.

        Returns:
            The :class:`Attribution`: maps ``[B, K, H, W]``, the class set, the target and the logits.

        Raises:
            ValueError: On a wrong input shape, non-finite input, invalid classes or a target outside the set.

        Example:
            >>> att = get_method("gradient", model).attribute(x, classes="top3+worst")  # doctest: +SKIP
            >>> att.maps.shape                                                         # doctest: +SKIP
            torch.Size([1, 4, 224, 224])
        """
        x = _check_input(inputs)
        rule = class_rule(classes, x.shape[0], x.device)
        call = _Call()
        token = _CURRENT.set(call)
        low = getattr(torch, self.autocast) if self.autocast else None
        try:
            # gradients are the method's business: a caller's no_grad() (Captum's NoiseTunnel, an eval loop) does
            # not turn them off
            with model_scope(self.model), torch.enable_grad(), \
                    torch.autocast(x.device.type, dtype=low, enabled=low is not None):
                maps, cls, logits = self._attribute(x, rule, target)
        finally:
            _CURRENT.reset(token)
        if low is not None:
            maps, logits = maps.float(), logits.float()
        cls, tgt = resolve_classes(cls, logits, target)
        channel_maps = maps if maps.dim() == 5 else None
        return Attribution(maps=maps.sum(2) if channel_maps is not None else maps, classes=cls, target=tgt,
                           logits=logits, method=self.name, vjp=call.vjp, channel_maps=channel_maps)

    def __call__(
        self, inputs: Tensor, classes: ClassesLike | None = None, target: Tensor | int | None = None
    ) -> Tensor:
        """Shorthand for ``attribute(inputs, target, classes).maps``: raw maps ``[B, K, H, W]``."""
        return self.attribute(inputs, target=target, classes=classes).maps

    @abc.abstractmethod
    def _attribute(
        self, x: Tensor, classes: ClassSet | Tensor | None, target: Tensor | int | None
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Compute the maps inside the model scope.

        Args:
            x: Checked input ``[B, C, H, W]``.
            classes: A class-set rule, validated indices ``[B, K]``, or ``None`` (the target only).
            target: Target class per sample, or ``None``.

        Returns:
            ``(maps, classes [B, K], logits [B, num_classes])``; maps ``[B, K, H, W]``, or ``[B, K, C, H, W]``
            for input-space methods (the base sums the channels and keeps the per-channel maps).
        """

    # helpers for subclasses -------------------------------------------------------------------------

    def _forward(
        self, x: Tensor, classes: ClassSet | Tensor | None, target: Tensor | int | None
    ) -> tuple[Tensor, Tensor]:
        """Run the model once and resolve the class set from its logits.

        Returns:
            ``(logits, classes [B, K])``.
        """
        logits = self.model(x)
        if not isinstance(logits, Tensor) or logits.dim() != 2:
            shape = tuple(logits.shape) if isinstance(logits, Tensor) else type(logits).__name__
            raise ValueError(f"the model must return logits [B, num_classes], got {shape}")
        return logits, resolve_classes(classes, logits, target)[0]

    def _gradients(
        self, outputs: Tensor, classes: Tensor, inputs: Sequence[Tensor], retain_graph: bool = False
    ) -> list[Tensor]:
        """:func:`class_gradients` with this method's VJP mode (``"auto"`` measures once and caches)."""
        mode = self.vjp
        if mode == "auto":
            key = (
                type(self).__name__, type(self.model).__name__, outputs.device.type, outputs.dtype,
                tuple(inputs[0].shape), classes.shape[1],
            )
            cached = _VJP_CHOICE.get(key)
            if cached is None:
                grads, measured = _measure(key, outputs, classes, inputs, retain_graph)
                _record(measured)
                return grads
            mode = cached
        try:
            grads = class_gradients(outputs, classes, inputs, mode, retain_graph)
        except RuntimeError as err:
            if mode != "batched":
                raise
            warnings.warn(f"batched VJP failed ({err}); using sequential VJPs", RuntimeWarning, stacklevel=2)
            grads = class_gradients(outputs, classes, inputs, "sequential", retain_graph)
            mode = "sequential"
        _record(mode)
        return grads

    def _to_input_size(self, maps: Tensor, size: tuple[int, ...], mode: str = "bilinear") -> Tensor:
        """Upsample ``[B, K, h, w]`` maps to the input size."""
        if tuple(maps.shape[-2:]) == tuple(size):
            return maps
        b, k = maps.shape[:2]
        flat = maps.reshape(b * k, 1, *maps.shape[-2:])
        align = False if mode in ("bilinear", "bicubic") else None
        return F.interpolate(flat, size=size, mode=mode, align_corners=align).reshape(b, k, *size)

    @staticmethod
    def _per_sample(grads: Tensor) -> Tensor:
        """Class gradients ``[K, B, ...]`` as ``[B, K, ...]``."""
        return grads.transpose(0, 1)


def _plain(value: object, names: dict[int, str]) -> object:
    """A setting as a JSON value: a module by its dotted name, tuples as lists, tensors by their shape."""
    if isinstance(value, nn.Module):
        return names.get(id(value), type(value).__name__)
    if isinstance(value, Tensor):
        return f"tensor{list(value.shape)}"
    if isinstance(value, (tuple, list)):
        return [_plain(v, names) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v, names) for k, v in value.items()}
    return value if value is None or isinstance(value, (bool, int, float, str)) else type(value).__name__


def _record(mode: str) -> None:
    call = _CURRENT.get()
    if call is not None:
        call.vjp = mode


def _measure(
    key: _VJPKey, outputs: Tensor, classes: Tensor, inputs: Sequence[Tensor], retain_graph: bool
) -> tuple[list[Tensor], _GradMode]:
    """Time sequential and batched VJPs for this key; cache the faster and return its result.

    Each mode runs twice, interleaved: the first pass of each also pays one-time costs (kernel selection, memory
    allocation), so the faster of its two passes is what counts. The result returned is the chosen mode's, so the
    first call gives what every later call would.
    """
    if classes.shape[1] < 2:
        return class_gradients(outputs, classes, inputs, "sequential", retain_graph), "sequential"
    timings: dict[_GradMode, float] = {}
    results: dict[_GradMode, list[Tensor]] = {}
    order: tuple[_GradMode, ...] = ("sequential", "batched", "sequential", "batched")
    for mode in order:
        if timings.get(mode) == float("inf"):
            continue  # it failed once
        _sync(outputs.device)
        start = time.perf_counter()
        try:
            results[mode] = class_gradients(outputs, classes, inputs, mode, retain_graph=True)
        except RuntimeError:
            timings[mode] = float("inf")
            continue
        _sync(outputs.device)  # CUDA runs asynchronously: time the work, not its launch
        timings[mode] = min(timings.get(mode, float("inf")), time.perf_counter() - start)
    assert "sequential" in results, "sequential VJPs cannot fail where the forward pass succeeded"
    _VJP_CHOICE[key] = min(timings, key=timings.__getitem__)
    return results[_VJP_CHOICE[key]], _VJP_CHOICE[key]


def _check_input(x: Tensor) -> Tensor:
    if not isinstance(x, Tensor):
        raise TypeError(f"inputs must be a torch.Tensor, got {type(x).__name__}")
    if x.dim() != 4:
        raise ValueError(f"inputs must have shape [B, C, H, W], got {tuple(x.shape)}")
    if not x.dtype.is_floating_point:
        raise ValueError(f"inputs must be a floating-point tensor, got {x.dtype}")
    if x.numel() and not bool(torch.isfinite(x.amax()) & torch.isfinite(x.amin())):  # NaN and inf reach both ends
        raise ValueError("inputs contain NaN or inf values")
    return x.detach()


