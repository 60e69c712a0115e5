"""VAR as a Captum ``Attribution``: refined (or vanilla) maps of any attrdist method where Captum expects a method.

:class:`VARAttribution` follows Captum's contract: ``attribute(inputs, target=None)`` returns one map per sample,
``[B, 1, H, W]`` (Captum's layout for layer attributions upsampled to the input, as ``LayerGradCam`` +
``LayerAttribution.interpolate`` give), raw; it has no convergence delta and does not multiply by the inputs.
So it composes with Captum's wrappers: ``NoiseTunnel(VARAttribution("gradcam", model))`` averages the VAR maps of
noisy copies of the input (SmoothGrad over VAR). Captum is an optional extra (``pip install attrdist[peers]``);
without it this module imports, and building a :class:`VARAttribution` says what to install.

Example:
    >>> from captum.attr import NoiseTunnel                                              # doctest: +SKIP
    >>> nt = NoiseTunnel(VARAttribution("gradcam", model, variant="smoothed-positive"))  # doctest: +SKIP
    >>> nt.attribute(x, nt_type="smoothgrad", nt_samples=8, stdevs=0.1, target=281)     # doctest: +SKIP
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar, cast

import torch

from ..classes import DEFAULT_CLASSES, ClassesLike
from ..var import DEFAULT_PRESET, VARConfig
from ._target import TargetMap, build_method

if TYPE_CHECKING:
    from torch import Tensor, nn

    from ..methods.base import Attributor
    from ..models import LoadedModel

if TYPE_CHECKING:

    class _CaptumAttribution:
        """What :class:`VARAttribution` takes from Captum's ``Attribution`` (Captum ships no type information)."""

        forward_func: Callable[..., Tensor]

        def __init__(self, forward_func: Callable[..., Tensor]) -> None: ...

    _HAVE_CAPTUM: bool
else:
    try:
        from captum.attr import Attribution as _CaptumAttribution

        _HAVE_CAPTUM = True
    except ImportError:  # the optional extra is missing: VARAttribution refuses to be built (below)
        _CaptumAttribution, _HAVE_CAPTUM = object, False

__all__ = ["VARAttribution"]

_F = TypeVar("_F", bound=Callable[..., Any])


def _unwrappable(func: _F) -> _F:
    """Give ``func`` a ``__wrapped__``: Captum's ``NoiseTunnel`` calls ``method.attribute.__wrapped__(method, ...)``.

    Captum's own methods get it from their ``log_usage`` decorator.
    """

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        return func(*args, **kwargs)

    return cast(_F, wrapper)


class VARAttribution(_CaptumAttribution):
    """An attrdist method, refined by VAR (or vanilla), as a Captum ``Attribution``.

    Args:
        method: A registered method name (with ``model``) or an :class:`~attrdist.methods.Attributor`.
        model: The classifier (an ``nn.Module`` or a :class:`~attrdist.models.LoadedModel`) when ``method`` is a
            name; Captum's ``forward_func`` is the method's model.
        variant: A VAR preset (a key of :data:`~attrdist.var.PRESETS`, default
            :data:`~attrdist.var.DEFAULT_PRESET`), a :class:`~attrdist.var.VARConfig`, or ``"vanilla"`` (the
            method's raw map of the target, no VAR).
        classes: The class set VAR explains each target against (ranked sets put the target first).
        **method_options: Options of the method, when ``method`` is a name.

    Raises:
        ImportError: If Captum is not installed.
        ValueError: On an unknown method or variant (the message lists the names).

    Example:
        >>> va = VARAttribution("gradcam", model, classes="top3+worst")  # doctest: +SKIP
        >>> va.attribute(x, target=281).shape                            # doctest: +SKIP
        torch.Size([1, 1, 224, 224])
    """

    def __init__(
        self, method: str | Attributor, model: nn.Module | LoadedModel | None = None, *,
        variant: str | VARConfig = DEFAULT_PRESET, classes: ClassesLike = DEFAULT_CLASSES, **method_options: object,
    ) -> None:
        if not _HAVE_CAPTUM:
            raise ImportError("VARAttribution needs Captum: pip install 'attrdist[peers]' (or pip install captum)")
        attributor = build_method(method, model, dict(method_options))
        self.target_map = TargetMap(attributor, variant, classes)
        super().__init__(attributor.model)

    @property
    def method(self) -> Attributor:
        """The attrdist method whose maps are returned."""
        return self.target_map.method

    @property
    def variant(self) -> str | VARConfig:
        """``"vanilla"``, a preset name or a :class:`~attrdist.var.VARConfig`."""
        return self.target_map.variant

    @property
    def multiplies_by_inputs(self) -> bool:
        """False: the maps are not multiplied by the inputs (Captum's ``NoiseTunnel`` reads this)."""
        return False

    def has_convergence_delta(self) -> bool:
        """False: VAR has no convergence delta (Captum's ``NoiseTunnel`` reads this)."""
        return False

    def __repr__(self) -> str:
        variant = self.variant if isinstance(self.variant, str) else "VARConfig(...)"
        return f"VARAttribution({self.method!r}, variant={variant!r})"

    @_unwrappable
    def attribute(
        self, inputs: Tensor | tuple[Tensor], target: int | list[int] | Tensor | None = None, **kwargs: Any,
    ) -> Tensor | tuple[Tensor]:
        """Maps of each sample's target class, ``[B, 1, H, W]``, raw (never normalised).

        Args:
            inputs: Input batch ``[B, C, H, W]``, or a tuple holding that one tensor (the result is then a tuple,
                as in Captum).
            target: The class per sample (an int, a list or a ``[B]`` tensor); default: the predicted class.
            **kwargs: Only ``return_convergence_delta=False`` is accepted (there is no delta).

        Returns:
            The target maps ``[B, 1, H, W]`` (VAR-refined, or the method's raw maps for ``"vanilla"``).

        Raises:
            TypeError: On several input tensors or another argument (``baselines``, ``additional_forward_args``).
            ValueError: On a wrong input shape or a target Captum gives per output dimension (a tuple).
        """
        if kwargs.pop("return_convergence_delta", False):
            raise TypeError("VARAttribution has no convergence delta (has_convergence_delta() is False)")
        if kwargs:
            raise TypeError(f"VARAttribution.attribute got unsupported argument(s) {sorted(kwargs)}; "
                            "it takes inputs and target")
        is_tuple = isinstance(inputs, tuple)
        if isinstance(inputs, tuple) and len(inputs) != 1:
            raise TypeError(f"VARAttribution explains one input tensor, got a tuple of {len(inputs)}")
        x = inputs[0] if isinstance(inputs, tuple) else inputs
        if isinstance(target, list | tuple) and any(isinstance(t, tuple) for t in target):
            raise ValueError("VARAttribution takes one class per sample; targets per output dimension (tuples) "
                             "do not apply to a classifier's logits")
        tgt = None if target is None else torch.as_tensor(target, dtype=torch.long, device=x.device)
        maps = self.target_map(x, tgt)[:, None]
        return (maps,) if is_tuple else maps
