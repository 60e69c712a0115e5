"""Hugging Face ``transformers`` image classifiers as a model source (``hf:ID --weights FOLDER``), offline.

The model is wrapped in an :class:`~attrdist.models.hf.HFClassifier` (logits out, ``config.id2label`` names).
The preprocessing comes from the image processor's ``preprocessor_config.json`` when the folder has one, else
from the config's image size with ImageNet mean and std. Nothing here imports ``transformers`` until a Hugging
Face model is loaded; nothing ever reaches the network (``local_files_only=True``).
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Protocol, cast

from torch import nn

from .hf import HFClassifier
from .types import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    ClassNames,
    LoadedModel,
    Preprocess,
    WeightsUnavailableError,
    default_class_names,
    num_outputs,
)

__all__ = ["WEIGHT_FILES", "class_names_of", "hf_offline", "load_hf", "loaded_model", "preprocess_of"]

#: PIL resampling codes, as image processors write them (``"resample": 3``).
_RESAMPLE = {0: "nearest", 1: "lanczos", 2: "bilinear", 3: "bicubic", 4: "box", 5: "hamming"}
#: The files a folder for ``--weights`` needs (the weights in one of the listed forms).
WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin")


class _HubConstants(Protocol):
    """``huggingface_hub.constants``: the offline switch read by every hub call."""

    HF_HUB_OFFLINE: bool | None


def _hub_constants() -> _HubConstants | None:
    """``huggingface_hub.constants``, if installed."""
    try:
        import huggingface_hub.constants as hf_constants
    except ImportError:
        return None
    return cast(_HubConstants, hf_constants)


@contextlib.contextmanager
def hf_offline() -> Iterator[None]:
    """Look only in the local Hugging Face cache (no network round trips and retries)."""
    old = os.environ.get("HF_HUB_OFFLINE")
    os.environ["HF_HUB_OFFLINE"] = "1"
    hf_constants = _hub_constants()
    old_const = getattr(hf_constants, "HF_HUB_OFFLINE", None)
    if hf_constants is not None:
        hf_constants.HF_HUB_OFFLINE = True
    try:
        yield
    finally:
        if hf_constants is not None:
            hf_constants.HF_HUB_OFFLINE = old_const
        if old is None:
            os.environ.pop("HF_HUB_OFFLINE", None)
        else:
            os.environ["HF_HUB_OFFLINE"] = old


def preprocess_of(config: object, folder: Path | None = None) -> Preprocess:
    """The :class:`~attrdist.models.Preprocess` of a model: its ``preprocessor_config.json`` if any.

    Args:
        config: The model's config (for ``image_size`` when there is no image-processor file).
        folder: The model's folder; its ``preprocessor_config.json`` gives size, crop, mean, std, resampling.

    Returns:
        The preprocessing.
    """
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


def _check_folder(model_id: str, weights: str) -> None:
    """Refuse a ``--weights`` folder without ``config.json`` or weights, naming what to fetch."""
    folder = Path(weights)
    if not (folder / "config.json").is_file() or not any((folder / f).is_file() for f in WEIGHT_FILES):
        missing = [f for f in ("config.json", "model.safetensors") if not (folder / f).is_file()]
        raise WeightsUnavailableError(f"{weights!r} is not a model folder (missing {', '.join(missing)}). "
                                      + _fetch_hint(model_id, weights))


def _transformers_model(model_id: str, weights: str | None, source: str) -> nn.Module:
    """The ``transformers`` classifier of ``source`` (a folder or a repository id), from local files only."""
    try:
        import transformers
    except ImportError as err:
        raise ImportError("hf: models need `pip install transformers` (or `pip install attrdist[hf]`)") from err
    random = weights == "random"
    if weights is not None and not random:
        _check_folder(model_id, weights)
    try:
        with hf_offline():
            if random:
                config = transformers.AutoConfig.from_pretrained(source, local_files_only=True)
                from_config: Callable[[object], nn.Module] = transformers.AutoModelForImageClassification.from_config
                model = from_config(config)
            else:
                model = transformers.AutoModelForImageClassification.from_pretrained(source, local_files_only=True)
    except OSError as err:
        what = "config.json" if random else "config and weights"
        raise WeightsUnavailableError(f"the {what} of hf:{model_id} are not on this machine and it cannot download "
                                      f"them. " + _fetch_hint(model_id, None)) from err
    return model


def load_hf(model_id: str, weights: str | None, name: str | None = None) -> LoadedModel:
    """Load ``hf:ID`` from a local folder (``weights``), the local Hugging Face cache, or at random.

    Args:
        model_id: A Hugging Face repository id (``google/vit-base-patch16-224``) or a local folder.
        weights: A folder with ``config.json`` and the weights; ``"random"`` (the config from the folder ``ID``
            or the local cache); ``None``: the local Hugging Face cache.
        name: The name to record; default ``hf:ID``.

    Returns:
        The model (an :class:`~attrdist.models.hf.HFClassifier` in eval mode), its preprocessing and its class
        names.

    Raises:
        WeightsUnavailableError: If config or weights are not on this machine; the message names the files to
            fetch and where to put them.
    """
    source = weights if weights not in (None, "random") else model_id
    model = _transformers_model(model_id, weights, str(source))
    folder = Path(str(source))
    local = folder if folder.is_dir() else _cached_folder(model_id)  # float32 below, whatever dtype was saved
    pre = preprocess_of(getattr(model, "config", None), local)
    wrapped = HFClassifier(model.float()).eval()
    names = class_names_of(wrapped, num_outputs(wrapped, pre))
    return LoadedModel(model=wrapped, preprocess=pre, class_names=names.names, wnids=names.wnids,
                       name=name or f"hf:{model_id}", weights="random" if weights == "random" else
                       str(weights or "hf-cache"))


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
        model: A ``transformers`` image classifier (or an :class:`~attrdist.models.hf.HFClassifier`).
        name: The name to record; default: the config's ``_name_or_path`` or the class name.

    Returns:
        The wrapped model in eval mode, its preprocessing and class names.
    """
    wrapped = model if isinstance(model, HFClassifier) else HFClassifier(model)
    config = getattr(wrapped.hf, "config", None)
    name_or_path = str(getattr(config, "_name_or_path", "") or "")
    name = name or f"hf:{name_or_path or type(wrapped.hf).__name__}"
    path = Path(name_or_path or ".")
    pre = preprocess_of(config, path if name_or_path and path.is_dir() else None)
    names = class_names_of(wrapped, int(getattr(config, "num_labels", 0)))
    return LoadedModel(model=wrapped.eval(), preprocess=pre, class_names=names.names, name=name,
                       weights="in memory", wnids=names.wnids)


def class_names_of(model: nn.Module, n_out: int) -> ClassNames:
    """The names (and WordNet ids) of an :class:`~attrdist.models.hf.HFClassifier`'s outputs.

    The names of ``config.id2label``; WordNet ids when the model has the 1000 ImageNet classes in their standard
    order (``id2label[0]`` starts with ``tench``); else :func:`~attrdist.models.types.default_class_names`
    (ImageNet names and ids for 1000 outputs, else ``class i``).
    """
    names = getattr(model, "class_names", None)
    if names is not None and len(names) == n_out:
        wnids = default_class_names(1000).wnids if n_out == 1000 and names[0].lower().startswith("tench") else []
        return ClassNames(list(names), wnids)
    return default_class_names(n_out)
