"""Models by name (one registry of model sources), architecture families and the embedded default."""

from .architectures import FAMILIES, Family, default_cam_layer, family_of, register_family
from .loading import (
    MODEL_SOURCES,
    MODELS,
    LoadedModel,
    ModelSource,
    Preprocess,
    UntrustedCheckpointError,
    WeightsUnavailableError,
    load_model,
    register_model_source,
)

__all__ = [
    "FAMILIES",
    "MODELS",
    "MODEL_SOURCES",
    "Family",
    "LoadedModel",
    "ModelSource",
    "Preprocess",
    "UntrustedCheckpointError",
    "WeightsUnavailableError",
    "default_cam_layer",
    "family_of",
    "load_model",
    "register_family",
    "register_model_source",
]
