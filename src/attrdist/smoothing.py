"""Smoothing of maps and images: one separable kernel for every layer.

VAR's smoothed distribution, the localisation metrics, the RISE curves and the blurred baseline of integrated
gradients all use :func:`smooth`; the module imports nothing of attrdist, so every layer can.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["gaussian_radius", "smooth"]


def gaussian_radius(sigma: float, height: int, width: int) -> int:
    """Radius ``ceil(3 sigma)`` of a truncated Gaussian, at least 1 and at most the side minus one (reflectable)."""
    return max(1, min(math.ceil(3 * sigma), height - 1, width - 1))


def smooth(
    maps: Tensor, kernel: int = 11, sigma: float = 2.0,
    kind: Literal["gaussian", "box", "none"] = "gaussian", border: Literal["reflect", "zeros"] = "reflect",
) -> Tensor:
    """Smooth maps with a normalised, separable 2-D kernel (same size), each ``[H, W]`` plane on its own.

    Args:
        maps: ``[..., H, W]`` (maps ``[N, H, W]``, images ``[B, C, H, W]``: every plane separately).
        kernel: Odd kernel size (default 11, as in the paper).
        sigma: Standard deviation of the Gaussian (default 2.0, OpenCV's for an 11x11 kernel, as in the VAR
            authors' demo; the RISE code's 11x11 kernel uses 5).
        kind: ``"gaussian"``, ``"box"`` (a mean filter, as B-cos v2's average pooling) or ``"none"``.
        border: ``"reflect"`` (reflect-101, OpenCV's default border: ``dcb|abcd|cba``) or ``"zeros"``
            (zero padding, as ``avg_pool2d`` and ``conv2d`` pad).

    Returns:
        Smoothed maps, same shape and dtype.

    Raises:
        ValueError: On an even or non-positive kernel size, an unknown kind or border.

    Example:
        >>> m = torch.zeros(1, 21, 21); m[0, 10, 10] = 1.0
        >>> round(float(smooth(m).sum()), 6), round(float(smooth(m)[0, 10, 10]), 4)
        (1.0, 0.0402)
    """
    if kind == "none":
        return maps
    if kernel < 1 or kernel % 2 == 0:
        raise ValueError(f"kernel size must be a positive odd number, got {kernel}")
    if border not in ("reflect", "zeros"):
        raise ValueError(f"unknown border {border!r}; use 'reflect' (reflect-101, OpenCV's default) or 'zeros'")
    if kind == "gaussian":
        if not (math.isfinite(sigma) and sigma > 0):
            raise ValueError(f"sigma must be a positive number, got {sigma}")
        r = torch.arange(kernel, dtype=torch.float64) - kernel // 2
        g = torch.exp(-(r**2) / (2 * sigma**2))
    elif kind == "box":
        g = torch.ones(kernel, dtype=torch.float64)
    else:
        raise ValueError(f"unknown smoothing {kind!r}; use 'gaussian', 'box' or 'none'")
    # both kernels are separable: a column pass and a row pass equal the 2-D convolution
    g = (g / g.sum()).to(maps.dtype).to(maps.device)
    pad = kernel // 2
    # the planes as the channels of one depthwise convolution: the same sums as a batch of one-channel planes,
    # 10-20x faster on CPUs
    n = math.prod(maps.shape[:-2])
    if n == 0:
        return maps.clone()
    x = maps.reshape(1, n, *maps.shape[-2:])
    cols = g.view(1, 1, -1, 1).expand(n, 1, kernel, 1).contiguous()
    rows = g.view(1, 1, 1, -1).expand(n, 1, 1, kernel).contiguous()
    if border == "reflect":
        if pad >= min(maps.shape[-2:]):
            raise ValueError(f"a {kernel}x{kernel} kernel needs maps larger than {pad} pixels for reflected borders")
        x = F.conv2d(F.pad(x, (0, 0, pad, pad), mode="reflect"), cols, groups=n)
        x = F.conv2d(F.pad(x, (pad, pad, 0, 0), mode="reflect"), rows, groups=n)
    else:
        x = F.conv2d(x, cols, padding=(pad, 0), groups=n)
        x = F.conv2d(x, rows, padding=(0, pad), groups=n)
    return x.view(maps.shape)
