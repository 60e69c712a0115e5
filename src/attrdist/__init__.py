"""attrdist: attribution maps refined by their distribution over classes (VAR).

Example:
    >>> import attrdist
    >>> lm = attrdist.load_model()                                   # EfficientNet-Lite0, offline
    >>> explainer = attrdist.VAR(attrdist.get_method("gradcam", lm.model), classes="top3+worst")
    >>> result = explainer(x)                                        # doctest: +SKIP
"""

from .classes import ClassSet, parse_class_set
from .methods import METHODS, Attribution, Attributor, get_method, list_methods
from .models import LoadedModel, load_model
from .var import PRESETS, VAR, VARConfig, VAROutput, VARResult, var

__version__ = "0.1.0"

__all__ = [
    "METHODS",
    "PRESETS",
    "VAR",
    "Attribution",
    "Attributor",
    "ClassSet",
    "LoadedModel",
    "VARConfig",
    "VAROutput",
    "VARResult",
    "get_method",
    "list_methods",
    "load_model",
    "parse_class_set",
    "var",
    "__version__",
]
