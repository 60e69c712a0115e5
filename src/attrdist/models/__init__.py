"""Models by name (one registry of model sources), architecture families and the embedded default.

Inside the package the shared types (:mod:`.types`) sit below the sources (:mod:`.hf_source`, :mod:`.loading`),
and the ViT and Hugging Face wrappers (:mod:`.vit`, :mod:`.hf`) below the types: no module imports one that
imports it.
"""

from .architectures import FAMILIES, Family, default_cam_layer, family_of, register_family
from .loading import MODEL_SOURCES, MODELS, load_model, register_model_source
from .types import (
    ClassNames,
    LoadedModel,
    ModelSource,
    Preprocess,
    UntrustedCheckpointError,
    WeightsUnavailableError,
    default_class_names,
)

__all__ = [
    "FAMILIES",
    "MODELS",
    "MODEL_SOURCES",
    "ClassNames",
    "Family",
    "LoadedModel",
    "ModelSource",
    "Preprocess",
    "UntrustedCheckpointError",
    "WeightsUnavailableError",
    "default_cam_layer",
    "default_class_names",
    "family_of",
    "load_model",
    "register_family",
    "register_model_source",
]
