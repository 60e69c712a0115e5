"""Attribution methods: one registry, one engine (one forward pass, K class gradients as batched VJPs)."""

from . import cam, gradient, lrp  # noqa: F401  (registers the methods)
from .adapters import CallableAdapter, CaptumAdapter, GradCamAdapter
from .base import METHODS, Attribution, Attributor, class_gradients, get_method, register_method
from .cam import GradCAM, GuidedGradCAM, LayerCAM
from .gradient import Gradient, GuidedBackprop, InputXGradient, IntegratedGradients, SmoothGrad
from .lrp import LRP

__all__ = [
    "LRP",
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


def list_methods() -> list[str]:
    """Names of the registered methods."""
    return METHODS.names()
