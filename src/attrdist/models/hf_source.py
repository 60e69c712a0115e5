"""Hugging Face ``transformers`` image classifiers as a model source (``hf:ID --weights FOLDER``), offline.

The model is wrapped in an :class:`~attrdist.models.hf.HFClassifier` (logits out, ``config.id2label`` names).
The preprocessing comes from the image processor's ``preprocessor_config.json`` when the folder has one, else
from the config's image size with ImageNet mean and std. Nothing here imports ``transformers`` until a Hugging
Face model is loaded; nothing ever reaches the network (``local_files_only=True``).
"""

from __future__ import annotations

import contextlib
import json
import math
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

__all__ = ["MAX_SIDE", "WEIGHT_FILES", "check_config", "class_names_of", "hf_offline", "load_hf", "loaded_model",
           "preprocess_of"]

#: PIL resampling codes, as image processors write them (``"resample": 3``).
_RESAMPLE = {0: "nearest", 1: "lanczos", 2: "bilinear", 3: "bicubic", 4: "box", 5: "hamming"}
#: The largest side, in pixels, a preprocessor config may ask for (a larger one is a mistake or an attack).
MAX_SIDE = 4096
#: The largest ``config.json`` / ``preprocessor_config.json`` read (real ones are a few kB; ImageNet labels ~70 kB).
MAX_JSON_BYTES = 8 * 2**20
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


def _read_json(path: Path) -> dict[str, object]:
    """A JSON object from a model folder's file; a one-line error naming the file otherwise."""
    try:
        if path.stat().st_size > MAX_JSON_BYTES:
            raise ValueError(f"{path}: {path.stat().st_size} bytes, more than a model's settings ({MAX_JSON_BYTES})")
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as err:
        raise ValueError(f"{path}: not valid JSON ({' '.join(str(err).split())[:200]})") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: a JSON {type(data).__name__}, not an object of settings")
    return data


def _side(path: Path, field: str, value: object) -> int:
    """A side length in pixels of a preprocessor setting: a whole number in 1..MAX_SIDE, else a one-line error."""
    if isinstance(value, bool) or not isinstance(value, int | float) or value != int(value) \
            or not 1 <= value <= MAX_SIDE:
        raise ValueError(f"{path}: field {field!r} is {value!r}; expected a whole number of pixels in 1..{MAX_SIDE}")
    return int(value)


def _sides(path: Path, field: str, value: object, keys: tuple[str, ...]) -> dict[str, int]:
    """A size setting (a number, or a mapping of ``keys`` to numbers) as side lengths; a one-line error else."""
    if not isinstance(value, dict):
        return dict.fromkeys(keys[:2], _side(path, field, value))
    known = {k: _side(path, f"{field}.{k}", v) for k, v in value.items() if k in keys}
    if not known:
        raise ValueError(f"{path}: field {field!r} is {value!r}; expected a number or one of {', '.join(keys)}")
    return known


def _statistics(path: Path, cfg: dict[str, object], field: str, default: tuple[float, ...]) -> tuple[float, ...]:
    """``image_mean`` or ``image_std``: three finite numbers (std positive); a one-line error else."""
    value = cfg.get(field, default)
    numbers = [float(v) for v in value if isinstance(v, int | float) and not isinstance(v, bool)] \
        if isinstance(value, list | tuple) else []
    ok = len(numbers) == 3 == len(cast("list[object]", value)) and all(math.isfinite(v) for v in numbers)
    if not ok or (field == "image_std" and min(numbers) <= 0):
        raise ValueError(f"{path}: field {field!r} is {value!r}; expected three finite numbers"
                         + (" above 0" if field == "image_std" else ""))
    return tuple(numbers)


def _resize_and_crop(path: Path, cfg: dict[str, object], default_crop: int) -> tuple[int, int]:
    """The resize and crop sides of an image-processor config (each field checked, named when wrong)."""
    size = _sides(path, "size", cfg.get("size", {"height": default_crop}),
                  ("height", "width", "shortest_edge", "longest_edge"))
    wants_crop = cfg.get("do_center_crop", "crop_size" in cfg) and cfg.get("crop_size") is not None
    crop_size = _sides(path, "crop_size", cfg["crop_size"], ("height", "width")) if wants_crop else None
    crop_pct = cfg.get("crop_pct")
    if crop_pct is not None and (isinstance(crop_pct, bool) or not isinstance(crop_pct, int | float)
                                 or not 0 < crop_pct <= 1):
        raise ValueError(f"{path}: field 'crop_pct' is {crop_pct!r}; expected a fraction in (0, 1]")
    if "shortest_edge" in size:
        edge = size["shortest_edge"]
        if crop_pct is not None and edge < 384:  # ConvNeXt's processor: resize edge/crop_pct, crop edge
            return _side(path, "size.shortest_edge / crop_pct", round(edge / crop_pct)), edge
        return edge, crop_size["height"] if crop_size and "height" in crop_size else edge
    # a fixed height x width (ViT's processor squashes to it: the short side here, then the centre crop)
    resize = size.get("height", default_crop)
    return resize, crop_size["height"] if crop_size and "height" in crop_size else resize


def preprocess_of(config: object, folder: Path | None = None) -> Preprocess:
    """The :class:`~attrdist.models.Preprocess` of a model: its ``preprocessor_config.json`` if any.

    Args:
        config: The model's config (for ``image_size`` when there is no image-processor file).
        folder: The model's folder; its ``preprocessor_config.json`` gives size, crop, mean, std, resampling.

    Returns:
        The preprocessing.

    Raises:
        ValueError: If ``preprocessor_config.json`` is not valid JSON or one of its fields is out of range (the
            message names the file and the field).
    """
    image_size = getattr(config, "image_size", 224)
    where = (folder / "config.json") if folder is not None else Path("config.json")
    crop = _side(where, "image_size", image_size[0] if isinstance(image_size, list | tuple) and image_size
                 else image_size)
    path = folder / "preprocessor_config.json" if folder is not None else None
    if path is None or not path.is_file():
        return Preprocess(resize=round(crop / 0.875), crop=crop)
    cfg = _read_json(path)
    resize, crop = _resize_and_crop(path, cfg, crop)
    resample = cfg.get("resample", 2)
    return Preprocess(resize=resize, crop=crop, mean=_statistics(path, cfg, "image_mean", IMAGENET_MEAN),
                      std=_statistics(path, cfg, "image_std", IMAGENET_STD),
                      interpolation=_RESAMPLE.get(resample, "bilinear") if isinstance(resample, int) else "bilinear")


def check_config(path: Path) -> None:
    """Refuse a model's ``config.json`` that would run code or is not an image classifier, in one line.

    Read here, before ``transformers`` sees it: an ``auto_map`` (code shipped in the folder), a ``model_type``
    that this ``transformers`` does not know (it would look for code in the folder and ask on standard input
    whether to run it) or one without an image-classification model (a text model such as BERT).

    Args:
        path: The ``config.json``.

    Raises:
        ValueError: Naming the file and the field.
    """
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING_NAMES
    from transformers.models.auto.modeling_auto import MODEL_FOR_IMAGE_CLASSIFICATION_MAPPING_NAMES

    cfg = _read_json(path)
    if "auto_map" in cfg:
        raise ValueError(f"{path}: field 'auto_map' names code in the model folder; attrdist never runs a "
                         "folder's code (use a model type that transformers itself provides)")
    model_type = cfg.get("model_type")
    if not isinstance(model_type, str) or model_type not in CONFIG_MAPPING_NAMES:
        raise ValueError(f"{path}: field 'model_type' is {model_type!r}, not a model type that this transformers "
                         "provides (attrdist never runs a folder's own code)")
    if model_type not in MODEL_FOR_IMAGE_CLASSIFICATION_MAPPING_NAMES:
        raise ValueError(f"{path}: field 'model_type' is {model_type!r}, which has no image classifier in "
                         "transformers (hf: models classify images)")


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


def _config_file(model_id: str, source: str) -> Path | None:
    """The ``config.json`` that ``transformers`` would read for ``source``: in the folder, or the local cache."""
    folder = Path(source)
    if folder.is_dir():
        return folder / "config.json" if (folder / "config.json").is_file() else None
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return None
    found = try_to_load_from_cache(model_id, "config.json")
    return Path(found) if isinstance(found, str) else None


def _transformers_model(model_id: str, weights: str | None, source: str) -> nn.Module:
    """The ``transformers`` classifier of ``source`` (a folder or a repository id), from local files only."""
    try:
        import transformers
    except ImportError as err:
        raise ImportError("hf: models need `pip install transformers` (or `pip install attrdist[hf]`)") from err
    random = weights == "random"
    if weights is not None and not random:
        _check_folder(model_id, weights)
    config_file = _config_file(model_id, source)
    if config_file is not None:
        check_config(config_file)  # before transformers reads it: no prompt, no code from the folder
    try:
        with hf_offline():
            if random:
                config = transformers.AutoConfig.from_pretrained(source, local_files_only=True,
                                                                 trust_remote_code=False)
                from_config: Callable[[object], nn.Module] = transformers.AutoModelForImageClassification.from_config
                model = from_config(config)
            else:
                model = transformers.AutoModelForImageClassification.from_pretrained(source, local_files_only=True,
                                                                                     trust_remote_code=False)
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
