"""Attribution methods: one registry, one engine (one forward pass, K class gradients as batched VJPs)."""

from . import cam, gradient, lrp, tlrp, transformer  # noqa: F401  (registers the methods)
from .adapters import CallableAdapter, CaptumAdapter, GradCamAdapter
from .base import METHODS, Attribution, Attributor, class_gradients, get_method, register_method
from .cam import GradCAM, GuidedGradCAM, LayerCAM, TokenGradCAM
from .gradient import Gradient, GuidedBackprop, InputXGradient, IntegratedGradients, SmoothGrad
from .lrp import LRP
from .tlrp import TLRP
from .transformer import GAE, AttentionGradCAM, AttentionRollout, BiAttn, GradRollout, InFlow, TAttn

__all__ = [
    "GAE",
    "LRP",
    "AttentionGradCAM",
    "AttentionRollout",
    "BiAttn",
    "GradRollout",
    "InFlow",
    "TAttn",
    "TLRP",
    "TokenGradCAM",
    "METHODS",
    "Attribution",
    "Attributor",
    "CallableAdapter",
    "CaptumAdapter",
    "GradCAM",
    "GradCamAdapter",
    "Gradient",
    "GuidedBackprop",
    "GuidedGradCAM",
    "InputXGradient",
    "IntegratedGradients",
    "LayerCAM",
    "SmoothGrad",
    "class_gradients",
    "get_method",
    "list_methods",
    "register_method",
]


def list_methods(architecture: str | None = None) -> list[str]:
    """Names of the registered methods, optionally only those for ``"cnn"`` or ``"vit"`` models."""
    return [n for n, cls in METHODS.items() if architecture is None or architecture in cls.applies_to]
