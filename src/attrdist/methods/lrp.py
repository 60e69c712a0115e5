"""Layer-wise Relevance Propagation through Zennit composites (Bach et al., 2015; Anders et al., 2021)."""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn

from ..classes import ClassSet
from .base import Attributor, register_method

if TYPE_CHECKING:  # zennit is imported when an LRP method is built (it imports torchvision's models)
    from zennit.canonizers import Canonizer
    from zennit.core import Composite

__all__ = ["LRP", "lrp_composites"]


@cache
def lrp_composites() -> dict[str, type[Composite]]:
    """Zennit's LRP composites by their name in Zennit's own registry (``zennit.composites.COMPOSITES``).

    The ``composite=`` option of ``lrp``: ``epsilon_plus_flat`` (the default), ``epsilon_plus``,
    ``epsilon_alpha2_beta1_flat``, ``epsilon_alpha2_beta1`` and ``epsilon_gamma_box``, the composites whose dense
    layers take the epsilon rule. Zennit's other composites (DeconvNet, guided backprop, excitation backprop,
    beta-smooth) modify gradients without being LRP.
    """
    from zennit.composites import COMPOSITES

    return {name: cls for name, cls in COMPOSITES.items() if name.startswith("epsilon_")}


@register_method("lrp")
class LRP(Attributor):
    """LRP relevance of the class logit at the input, channel-summed, computed by Zennit.

    The output is seeded with a one-hot of each class. The composite's rules are registered once, the
    modified model runs forward once, and the K relevances are K modified backward passes over that
    graph. A gradient-free forward pass of the unmodified model gives the logits and the class set.

    Args:
        model: The classifier.
        composite: A name of :func:`lrp_composites` (default ``"epsilon_plus_flat"``) or a Zennit composite.
        canonizers: Zennit canonizers; default: those of the model's architecture family (BatchNorm
            merging, residual sums, one activation module per use).
        **kwargs: See :class:`Attributor`. ``epsilon_gamma_box`` needs ``low``/``high`` bounds and is
            built with the input's range.
    """

    display_name = "LRP"
    summary = "LRP through Zennit (EpsilonPlusFlat and the architecture's canonizers)"
    applies_to = frozenset({"cnn"})
    reference = "Bach et al. On Pixel-Wise Explanations by Layer-Wise Relevance Propagation. PLoS ONE 2015"

    def __init__(
        self, model: nn.Module, *, composite: str | Composite = "epsilon_plus_flat",
        canonizers: Sequence[Canonizer] | None = None, **kwargs: Any,
    ) -> None:
        super().__init__(model, **kwargs)
        if canonizers is None:
            from ..models.architectures import family_of

            canonizers = family_of(model).canonizers()
        self.canonizers = list(canonizers)
        if isinstance(composite, str) and composite not in lrp_composites():
            raise ValueError(f"unknown LRP composite {composite!r}; choose one of {sorted(lrp_composites())}")
        self.composite = composite

    def _composite(self, x: Tensor) -> Composite:
        if not isinstance(self.composite, str):
            return self.composite
        factory = lrp_composites()[self.composite]
        if self.composite == "epsilon_gamma_box":
            return factory(low=float(x.min()), high=float(x.max()), canonizers=self.canonizers)
        return factory(canonizers=self.canonizers)

    def _attribute(
        self, x: Tensor, classes: ClassSet | Tensor | None, target: Tensor | int | None
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Compute the maps (see :meth:`Attributor._attribute`)."""
        # Zennit's BatchNorm merging leaves a factor 1/sqrt(1 + eps) per BatchNorm, so the canonized logits
        # differ slightly (~1e-4) from the model's: the class set and the returned logits come from a
        # plain, gradient-free forward pass
        with torch.inference_mode():
            logits, cls = self._forward(x, classes, target)
        xg = x.clone().requires_grad_(True)
        with self._composite(x).context(self.model) as modified:
            (g,) = self._gradients(modified(xg), cls, [xg])
        return self._per_sample(g), cls, logits
