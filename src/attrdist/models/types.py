"""The types every model source shares: preprocessing, a loaded model, a source, the loading errors.

They sit below the sources that build them (:mod:`~attrdist.models.hf_source`, :mod:`~attrdist.models.loading`),
so that a source never imports the loader that imports it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np
import torch
from PIL import Image
from torch import Tensor, nn

from ..labels import imagenet_class_names
from .vit import architecture_of, fixed_input_size

__all__ = ["IMAGENET_MEAN", "IMAGENET_STD", "ClassNames", "LoadedModel", "ModelSource", "Preprocess",
           "UntrustedCheckpointError", "WeightsUnavailableError", "default_class_names", "num_outputs"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class WeightsUnavailableError(FileNotFoundError):
    """The weights are neither given nor in the local cache, and this machine cannot download them."""


class UntrustedCheckpointError(ValueError):
    """The checkpoint holds pickled code, which only loads with ``trust_checkpoint=True``."""


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

        Returns:
            The ``crop x crop`` image.
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
        rgb = np.array(image.convert("RGB"), dtype=np.uint8)
        return torch.from_numpy(rgb).permute(2, 0, 1).contiguous().float().div(255.0)

    def normalize(self, unit: Tensor) -> Tensor:
        """Normalise a ``[..., 3, H, W]`` tensor in [0, 1]."""
        mean = torch.tensor(self.mean, dtype=unit.dtype, device=unit.device).view(-1, 1, 1)
        std = torch.tensor(self.std, dtype=unit.dtype, device=unit.device).view(-1, 1, 1)
        return (unit - mean) / std

    def __call__(self, image: Image.Image) -> Tensor:
        """Model input ``[3, crop, crop]`` for an RGB PIL image."""
        return self.normalize(self.to_unit(self.crop_image(image)))


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
        return architecture_of(self.model)

    @property
    def input_size(self) -> tuple[int, int] | None:
        """The ``(height, width)`` the model requires (ViTs), or ``None`` when it takes any size (CNNs)."""
        return fixed_input_size(self.model)

    def __repr__(self) -> str:
        """One line (the default printed every module of the network and every class name: about 60 kB)."""
        params = sum(p.numel() for p in self.model.parameters())
        return (f"LoadedModel(name={self.name!r}, weights={self.weights!r}, architecture={self.architecture!r}, "
                f"classes={len(self.class_names)}, parameters={params / 1e6:.1f}M)")


class ClassNames(NamedTuple):
    """The names of a model's outputs.

    Attributes:
        names: One name per output.
        wnids: WordNet ids per output (ImageNet models), else empty.
    """

    names: list[str]
    wnids: list[str]


def default_class_names(n_out: int) -> ClassNames:
    """The names of outputs nobody named: the ImageNet classes for 1000 outputs, else ``class i``."""
    if n_out == 1000:
        names, wnids = imagenet_class_names()
        return ClassNames(names, wnids)
    return ClassNames([f"class {i}" for i in range(n_out)], [])


def num_outputs(model: nn.Module, preprocess: Preprocess) -> int:
    """The number of outputs of ``model``: its last linear layer's, else those of a forward pass on zeros."""
    for mod in reversed(list(model.modules())):
        if isinstance(mod, nn.Linear):
            return mod.out_features
    with torch.no_grad():
        return int(model(torch.zeros(1, 3, preprocess.crop, preprocess.crop)).shape[-1])


class ModelSource(NamedTuple):
    """A way to name a model.

    Attributes:
        name: The source's name.
        syntax: How a model of this source is written (``torchvision:NAME``).
        help: One line for ``attrdist models``.
        matches: ``spec -> bool``.
        load: ``(spec, weights, trust_checkpoint) -> LoadedModel``, its class names included (named ``spec``).
    """

    name: str
    syntax: str
    help: str
    matches: Callable[[str], bool]
    load: Callable[[str, str | None, bool], LoadedModel]
