"""Hugging Face ``transformers`` image classifiers, wrapped to return logits (no ``transformers`` import here).

A ``transformers`` classifier returns a ``ModelOutput``; :class:`HFClassifier` wraps it so that it returns its
logits, keeps the Hugging Face model reachable as ``.hf`` (layers are named ``hf.resnet.encoder.stages.3``, ...)
and carries the class names of ``config.id2label``. Loading ``hf:ID`` offline is the model source
:mod:`~attrdist.models.hf_source`; this module sits below it, and below :mod:`~attrdist.models.vit` and
:mod:`~attrdist.models.architectures`, which recognise wrapped models.
"""

from __future__ import annotations

from torch import Tensor, nn

__all__ = ["HFClassifier", "as_classifier", "hf_model", "is_transformers_model"]


def is_transformers_model(model: object) -> bool:
    """Whether ``model`` is a ``transformers`` model (checked without importing ``transformers``)."""
    return isinstance(model, nn.Module) and type(model).__module__.startswith("transformers.")


def hf_model(model: nn.Module) -> nn.Module | None:
    """The Hugging Face model inside an :class:`HFClassifier`, else ``None``."""
    return model.hf if isinstance(model, HFClassifier) and is_transformers_model(model.hf) else None


def _class_names(config: object) -> list[str] | None:
    """The class names of ``config.id2label``, or ``None`` for unnamed (``LABEL_i``) or missing labels."""
    labels = getattr(config, "id2label", None) or {}
    n = int(getattr(config, "num_labels", len(labels)) or 0)
    names = [str(labels.get(i, labels.get(str(i), f"LABEL_{i}"))) for i in range(n)]
    if not names or all(name == f"LABEL_{i}" for i, name in enumerate(names)):
        return None
    return names


class HFClassifier(nn.Module):
    """A ``transformers`` image classifier that returns its logits ``[B, num_labels]``.

    Args:
        model: A ``transformers`` image-classification model (``ViTForImageClassification``,
            ``ResNetForImageClassification``, ...).

    Attributes:
        hf: The wrapped model (its layers are named ``hf.<name>``).
        class_names: The names of ``config.id2label``; ``None`` when the config names no classes.

    Example:
        >>> from transformers import ResNetConfig, ResNetForImageClassification  # doctest: +SKIP
        >>> net = HFClassifier(ResNetForImageClassification(ResNetConfig(num_labels=3)))  # doctest: +SKIP
    """

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        if not is_transformers_model(model):
            raise TypeError(f"HFClassifier wraps a transformers model, got {type(model).__name__}")
        self.hf = model
        self.class_names = _class_names(getattr(model, "config", None))

    def forward(self, x: Tensor) -> Tensor:
        """Logits for pixel values ``x [B, 3, H, W]``."""
        out = self.hf(pixel_values=x)
        logits: Tensor = out.logits if hasattr(out, "logits") else out[0]
        return logits


def as_classifier(model: nn.Module) -> nn.Module:
    """``model`` wrapped in an :class:`HFClassifier` if it is a ``transformers`` model, else unchanged."""
    return HFClassifier(model).eval() if is_transformers_model(model) else model
