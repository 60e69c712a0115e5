"""The explained class's map of a method alone (vanilla) or refined by VAR: what every integration returns.

The integrations differ only in what they take and give back (NumPy for Quantus, a tensor for Captum); the
method, the variant and the class set are resolved here, once, with errors in one line.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from ..classes import DEFAULT_CLASSES, ClassesLike
from ..methods.base import Attributor, get_method
from ..var import PRESETS, VAR, VARConfig

if TYPE_CHECKING:
    from torch import Tensor, nn

    from ..models import LoadedModel

__all__ = ["VANILLA", "TargetMap", "build_method", "check_variant"]

#: The variant name of the method's own (raw) map, without VAR.
VANILLA = "vanilla"


def check_variant(variant: str | VARConfig) -> str | VARConfig:
    """``variant`` if it is ``"vanilla"``, a key of :data:`~attrdist.var.PRESETS` or a :class:`VARConfig`.

    Raises:
        ValueError: On any other value; the message lists the names.
    """
    if isinstance(variant, VARConfig) or variant == VANILLA or variant in PRESETS:
        return variant
    raise ValueError(f"unknown variant {variant!r}; choose {VANILLA!r} or a VAR preset: {', '.join(PRESETS)}")


def build_method(method: str | Attributor, model: nn.Module | LoadedModel | None,
                 options: dict[str, object]) -> Attributor:
    """An :class:`Attributor` from a registered name and a model, or the given one.

    Raises:
        ValueError: On an unknown method name (the message lists the registered names) or a method that does not
            apply to the model.
        TypeError: On a missing model, or options given with an :class:`Attributor`.
    """
    if isinstance(method, Attributor):
        if options:
            raise TypeError(f"method options {sorted(options)} apply to a method name, not to a built {method!r}")
        return method
    if model is None:
        raise TypeError(f"method {method!r} needs a model: pass the classifier (an nn.Module or a LoadedModel)")
    try:
        return get_method(method, model, **options)
    except KeyError as err:  # the registry's message, one line, as the ValueError of any other bad argument
        raise ValueError(str(err.args[0])) from None


class TargetMap:
    """The map of the explained class, from a method alone (``"vanilla"``) or refined by VAR.

    Args:
        method: The attribution method.
        variant: ``"vanilla"`` (the method's raw map of the target, no VAR), a key of
            :data:`~attrdist.var.PRESETS` or a :class:`~attrdist.var.VARConfig`.
        classes: The class set VAR explains the target against (ranked sets put the target first).

    Raises:
        ValueError: On an unknown variant or class set.
    """

    def __init__(self, method: Attributor, variant: str | VARConfig, classes: ClassesLike = DEFAULT_CLASSES) -> None:
        self.method = method
        self.variant = check_variant(variant)
        self.var = None if self.variant == VANILLA else VAR(method, classes=classes, preset=self.variant)

    def __call__(self, inputs: Tensor, target: Tensor | int | None = None) -> Tensor:
        """Maps ``[B, H, W]`` of each sample's target (default: the predicted class), raw (never normalised).

        Gradients are enabled inside (Captum's ``NoiseTunnel`` and some Quantus metrics call under ``no_grad``).
        """
        with torch.enable_grad():
            if self.var is None:
                return self.method.attribute(inputs, target=target).maps[:, 0]
            return self.var.attribute(inputs, target=target).refined_target
