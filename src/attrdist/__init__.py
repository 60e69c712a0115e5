"""attrdist: attribution maps refined by their distribution over classes (VAR).

Names are imported on first use, so that ``import attrdist`` (and ``attrdist --help``) stays fast.

Example:
    >>> import attrdist
    >>> lm = attrdist.load_model()                                   # EfficientNet-Lite0, offline
    >>> explainer = attrdist.VAR(attrdist.get_method("gradcam", lm.model), classes="top3+worst")
    >>> result = explainer.attribute(x)                              # doctest: +SKIP
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from .version import __version__

#: Public name -> the module that defines it.
_EXPORTS = {
    "METHODS": "methods",
    "PRESETS": "var",
    "VAR": "var",
    "Attribution": "methods",
    "Attributor": "methods",
    "ClassSet": "classes",
    "Explanation": "explanation",
    "LoadedModel": "models",
    "VARConfig": "var",
    "VAROutput": "var",
    "VARResult": "var",
    "explain_image": "explain",
    "get_method": "methods",
    "list_methods": "methods",
    "load_model": "models",
    "parse_class_set": "classes",
    "refine": "var",
}

__all__ = [
    "METHODS",
    "PRESETS",
    "VAR",
    "Attribution",
    "Attributor",
    "ClassSet",
    "Explanation",
    "LoadedModel",
    "VARConfig",
    "VAROutput",
    "VARResult",
    "explain_image",
    "get_method",
    "list_methods",
    "load_model",
    "parse_class_set",
    "refine",
    "__version__",
]

if TYPE_CHECKING:
    from .classes import ClassSet, parse_class_set
    from .explain import explain_image
    from .explanation import Explanation
    from .methods import METHODS, Attribution, Attributor, get_method, list_methods
    from .models import LoadedModel, load_model
    from .var import PRESETS, VAR, VARConfig, VAROutput, VARResult, refine


def __getattr__(name: str) -> object:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'attrdist' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
