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

#: Public name -> the module that defines it: the one list of the package's face.
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

#: The public names: those of :data:`_EXPORTS` and the version (written once; ``tests/test_decisions.py`` checks that
#: the ``TYPE_CHECKING`` imports below, which type checkers read, name the same ones).
__all__ = [*_EXPORTS, "__version__"]

if TYPE_CHECKING:  # for type checkers: the names of _EXPORTS, re-exported (`X as X`)
    from .classes import ClassSet as ClassSet
    from .classes import parse_class_set as parse_class_set
    from .explain import explain_image as explain_image
    from .explanation import Explanation as Explanation
    from .methods import METHODS as METHODS
    from .methods import Attribution as Attribution
    from .methods import Attributor as Attributor
    from .methods import get_method as get_method
    from .methods import list_methods as list_methods
    from .models import LoadedModel as LoadedModel
    from .models import load_model as load_model
    from .var import PRESETS as PRESETS
    from .var import VAR as VAR
    from .var import VARConfig as VARConfig
    from .var import VAROutput as VAROutput
    from .var import VARResult as VARResult
    from .var import refine as refine


def __getattr__(name: str) -> object:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'attrdist' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
