"""Hugging Face ``transformers`` image classifiers as a model source (``hf:ID --weights FOLDER``), offline.

A ``transformers`` classifier returns a ``ModelOutput``; :class:`HFClassifier` wraps it so that it returns its
logits, keeps the Hugging Face model reachable as ``.hf`` (layers are named ``hf.resnet.encoder.stages.3``, ...)
and carries the class names of ``config.id2label``. The preprocessing comes from the image processor's
``preprocessor_config.json`` when the folder has one, else from the config's image size with ImageNet
mean and std. Nothing here imports ``transformers`` until a Hugging Face model is loaded; nothing ever
reaches the network (``local_files_only=True``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from torch import Tensor, nn

from ..labels import imagenet_class_names

if TYPE_CHECKING:  # loading.py imports this module lazily; the reverse import is deferred too
    from .loading import LoadedModel, Preprocess

__all__ = ["HFClassifier", "as_classifier", "class_names_of", "hf_model", "is_transformers_model", "load_hf",
           "loaded_model", "preprocess_of"]

#: PIL resampling codes, as image processors write them (``"resample": 3``).
_RESAMPLE = {0: "nearest", 1: "lanczos", 2: "bilinear", 3: "bicubic", 4: "box", 5: "hamming"}
#: The files a folder for ``--weights`` needs (the weights in one of the listed forms).
WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin")


def is_transformers_model(model: object) -> bool:
    """Whether ``model`` is a ``transformers`` model (checked without importing ``transformers``)."""
    return isinstance(model, nn.Module) and type(model).__module__.startswith("transformers.")


def hf_model(model: nn.Module) -> nn.Module | None:
    """The Hugging Face model inside an :class:`HFClassifier`, else ``None``."""
    inner = getattr(model, "hf", None) if isinstance(model, HFClassifier) else None
    return inner if is_transformers_model(inner) else None


def _class_names(config: Any) -> list[str] | None:
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
        return out.logits if hasattr(out, "logits") else out[0]


def as_classifier(model: nn.Module) -> nn.Module:
    """``model`` wrapped in an :class:`HFClassifier` if it is a ``transformers`` model, else unchanged."""
    return HFClassifier(model).eval() if is_transformers_model(model) else model


def preprocess_of(config: Any, folder: Path | None = None) -> Preprocess:
    """The :class:`~attrdist.models.loading.Preprocess` of a model: its ``preprocessor_config.json`` if any.

    Args:
        config: The model's config (for ``image_size`` when there is no image-processor file).
        folder: The model's folder; its ``preprocessor_config.json`` gives size, crop, mean, std, resampling.
    """
    from .loading import IMAGENET_MEAN, IMAGENET_STD, Preprocess

    image_size = getattr(config, "image_size", 224)
    crop = int(image_size[0] if isinstance(image_size, list | tuple) else image_size)
    path = folder / "preprocessor_config.json" if folder is not None else None
    if path is None or not path.is_file():
        return Preprocess(resize=round(crop / 0.875), crop=crop)
    cfg = json.loads(path.read_text(encoding="utf-8"))
    size = cfg.get("size", {})
    size = {"height": size, "width": size} if isinstance(size, int) else size
    crop_size = cfg.get("crop_size") if cfg.get("do_center_crop", "crop_size" in cfg) else None
    crop_size = {"height": crop_size, "width": crop_size} if isinstance(crop_size, int) else crop_size
    if "shortest_edge" in size:
        edge = int(size["shortest_edge"])
        if cfg.get("crop_pct") is not None and edge < 384:  # ConvNeXt's processor: resize edge/crop_pct, crop edge
            resize, crop = round(edge / float(cfg["crop_pct"])), edge
        else:
            resize, crop = edge, int(crop_size["height"]) if crop_size else edge
    else:  # a fixed height x width (ViT's processor squashes to it: the short side here, then the centre crop)
        resize = int(size.get("height", crop))
        crop = int(crop_size["height"]) if crop_size else resize
    return Preprocess(resize=resize, crop=crop, mean=tuple(cfg.get("image_mean", IMAGENET_MEAN)),
                      std=tuple(cfg.get("image_std", IMAGENET_STD)),
                      interpolation=_RESAMPLE.get(int(cfg.get("resample", 2)), "bilinear"))


def _fetch_hint(model_id: str, folder: str | None) -> str:
    where = folder or f"a folder such as ./{model_id.rsplit('/', 1)[-1]}"
    return (f"Download config.json, model.safetensors and preprocessor_config.json from "
            f"https://huggingface.co/{model_id} (huggingface-cli download {model_id} config.json model.safetensors "
            f"preprocessor_config.json --local-dir DIR) on a machine with internet access, put them in {where} and "
            f"pass it with --weights (Python: load_model('hf:{model_id}', weights=FOLDER))")


def load_hf(model_id: str, weights: str | None) -> tuple[nn.Module, Preprocess, str]:
    """Load ``hf:ID`` from a local folder (``weights``), the local Hugging Face cache, or at random.

    Args:
        model_id: A Hugging Face repository id (``google/vit-base-patch16-224``) or a local folder.
        weights: A folder with ``config.json`` and the weights; ``"random"`` (the config from the folder ``ID``
            or the local cache); ``None``: the local Hugging Face cache.

    Returns:
        ``(model, preprocessing, weights description)``; the model is an :class:`HFClassifier` in eval mode.

    Raises:
        WeightsUnavailableError: If config or weights are not on this machine; the message names the files to
            fetch and where to put them.
    """
    from .loading import WeightsUnavailableError, _hf_offline

    try:
        import transformers
    except ImportError as err:
        raise ImportError("hf: models need `pip install transformers` (or `pip install attrdist[hf]`)") from err
    source = weights if weights not in (None, "random") else model_id
    folder = Path(str(source))
    if weights not in (None, "random"):
        if not (folder / "config.json").is_file() or not any((folder / f).is_file() for f in WEIGHT_FILES):
            missing = [f for f in ("config.json", "model.safetensors") if not (folder / f).is_file()]
            raise WeightsUnavailableError(f"{weights!r} is not a model folder (missing {', '.join(missing)}). "
                                          + _fetch_hint(model_id, weights))
    try:
        with _hf_offline():
            if weights == "random":
                config = transformers.AutoConfig.from_pretrained(source, local_files_only=True)
                model = transformers.AutoModelForImageClassification.from_config(config)
            else:
                model = transformers.AutoModelForImageClassification.from_pretrained(source, local_files_only=True)
    except OSError as err:
        what = "config.json" if weights == "random" else "config and weights"
        raise WeightsUnavailableError(f"the {what} of hf:{model_id} are not on this machine and it cannot download "
                                      f"them. " + _fetch_hint(model_id, None)) from err
    local = folder if folder.is_dir() else _cached_folder(model_id)  # float32 below, whatever dtype was saved
    pre = preprocess_of(model.config, local)
    return HFClassifier(model.float()).eval(), pre, "random" if weights == "random" else str(weights or "hf-cache")


def _cached_folder(model_id: str) -> Path | None:
    """The local cache's snapshot folder of ``model_id`` holding its ``preprocessor_config.json``, if any."""
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return None
    found = try_to_load_from_cache(model_id, "preprocessor_config.json")
    return Path(found).parent if isinstance(found, str) else None


def loaded_model(model: nn.Module, name: str | None = None) -> LoadedModel:
    """A :class:`~attrdist.models.LoadedModel` for a ``transformers`` model already in memory.

    Args:
        model: A ``transformers`` image classifier (or an :class:`HFClassifier`).
        name: The name to record; default: the config's ``_name_or_path`` or the class name.
    """
    from .loading import LoadedModel

    wrapped = model if isinstance(model, HFClassifier) else HFClassifier(model)
    config = wrapped.hf.config
    name = name or f"hf:{getattr(config, '_name_or_path', '') or type(wrapped.hf).__name__}"
    path = Path(str(getattr(config, "_name_or_path", "") or "."))
    pre = preprocess_of(config, path if getattr(config, "_name_or_path", "") and path.is_dir() else None)
    names, wnids = class_names_of(wrapped, int(config.num_labels))
    return LoadedModel(model=wrapped.eval(), preprocess=pre, class_names=names, name=name, weights="in memory",
                       wnids=wnids)


def class_names_of(model: nn.Module, n_out: int) -> tuple[list[str], list[str]]:
    """``(names, wnids)`` of an :class:`HFClassifier`'s outputs.

    The names of ``config.id2label``; WordNet ids when the model has the 1000 ImageNet classes in their standard
    order (``id2label[0]`` starts with ``tench``); ImageNet names and ids when the config names no classes and
    there are 1000 outputs; else ``class i``.
    """
    names = getattr(model, "class_names", None)
    if names is not None and len(names) == n_out:
        wnids = imagenet_class_names()[1] if n_out == 1000 and names[0].lower().startswith("tench") else []
        return list(names), wnids
    return imagenet_class_names() if n_out == 1000 else ([f"class {i}" for i in range(n_out)], [])
