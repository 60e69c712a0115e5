"""Attribution methods: one registry, one engine (one forward pass, K class gradients as batched VJPs).

Every module of this package registers its methods when imported; all of them are imported here, so a
new method is one new file (see ``docs/extending.md``).
"""

import importlib
import pkgutil

from .adapters import CallableAdapter, CaptumAdapter, GradCamAdapter
from .base import (
    BENCHMARK_METHODS,
    DEFAULT_METHODS,
    METHODS,
    Attribution,
    Attributor,
    MethodNotApplicableError,
    architecture_of,
    class_gradients,
    get_method,
    list_methods,
    register_method,
)
from .cam import GradCAM, GuidedGradCAM, LayerCAM, TokenGradCAM
from .gradient import Gradient, GuidedBackprop, InputXGradient, IntegratedGradients, SmoothGrad
from .lrp import LRP
from .tlrp import TLRP
from .transformer import GAE, AttentionGradCAM, AttentionRollout, BiAttn, GradRollout, InFlow, TAttn

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")

__all__ = [
    "BENCHMARK_METHODS",
    "DEFAULT_METHODS",
    "GAE",
    "LRP",
    "METHODS",
    "TLRP",
    "AttentionGradCAM",
    "AttentionRollout",
    "Attribution",
    "Attributor",
    "BiAttn",
    "CallableAdapter",
    "CaptumAdapter",
    "GradCAM",
    "GradCamAdapter",
    "GradRollout",
    "Gradient",
    "GuidedBackprop",
    "GuidedGradCAM",
    "InFlow",
    "InputXGradient",
    "IntegratedGradients",
    "LayerCAM",
    "MethodNotApplicableError",
    "SmoothGrad",
    "TAttn",
    "TokenGradCAM",
    "architecture_of",
    "class_gradients",
    "get_method",
    "list_methods",
    "register_method",
]
