"""RISE insertion and deletion (Petsiuk et al., 2018).

Insert pixels in saliency order into a blurred copy (insertion) or remove them into zeros (deletion), ``step``
pixels at a time; the AUC is the trapezoid rule on a unit x-axis. The benchmark stores them as the metrics
``insertion_auc`` and ``deletion_auc`` (declared in :mod:`attrdist.metrics.base`).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ..smoothing import smooth

__all__ = ["rise_curves"]


def rise_curves(
    model: nn.Module, x: Tensor, saliency: Tensor, target: int, step: int = 224,
    batch: int = 32,
) -> dict[str, float]:
    """RISE insertion and deletion AUCs of one image.

    Args:
        model: Classifier.
        x: Normalised input ``[1, C, H, W]``.
        saliency: ``[H, W]``, higher is more important.
        target: The class whose softmax is tracked.
        step: Pixels inserted or deleted per step.
        batch: Images per forward pass.

    Returns:
        ``{"insertion": auc, "deletion": auc}`` with ``auc = (sum - first/2 - last/2) / (n - 1)``.
    """
    _, c, h, w = x.shape
    n = (h * w + step - 1) // step
    order = saliency.flatten().argsort(descending=True)
    blurred = smooth(x, 11, 5.0, "gaussian", "zeros")  # the RISE code's 11x11 kernel, sigma 5, zero padding
    out = {}
    for kind, start, finish in (("insertion", blurred, x), ("deletion", x, torch.zeros_like(x))):
        scores = []
        for b0 in range(0, n + 1, batch):
            idx = range(b0, min(n + 1, b0 + batch))
            masks = torch.zeros(len(idx), h * w, device=x.device)
            for j, i in enumerate(idx):
                masks[j, order[: i * step]] = 1.0
            masks = masks.view(-1, 1, h, w)
            imgs = start * (1 - masks) + finish * masks
            with torch.no_grad():
                scores.append(model(imgs).softmax(1)[:, target])
        s = torch.cat(scores).double().cpu()
        out[kind] = float((s.sum() - s[0] / 2 - s[-1] / 2) / (len(s) - 1))
    return out
