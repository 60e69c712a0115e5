"""Models by name, architecture families and the embedded default (EfficientNet-Lite0)."""

from .architectures import FAMILIES, Family, default_cam_layer, family_of, register_family
from .loading import MODELS, LoadedModel, Preprocess, WeightsUnavailableError, load_model

__all__ = [
    "FAMILIES",
    "MODELS",
    "Family",
    "LoadedModel",
    "Preprocess",
    "WeightsUnavailableError",
    "default_cam_layer",
    "family_of",
    "load_model",
    "register_family",
]
