"""Insertion curves: Performance Information Curves (SIC, AIC) and RISE insertion / deletion.

PIC (Kapishnikov et al., 2019): the image is reconstructed from its most salient pixels plus a fixed
random 1% of pixels by linear interpolation; the x-axis is the normalised information of that image
(its lossless WebP size), the y-axis the normalised prediction: the softmax of the original top-1 class
(SIC) or whether the top-1 class is unchanged (AIC). Unlike the reference implementation, every
threshold's image goes through the model in one batch, and SIC and AIC come from the same predictions.

Speed: the reconstruction is scipy's (the reference's own arithmetic, so the images are identical), but
the barycentric transforms of the triangulation are computed with one BLAS thread. scipy computes them
with one tiny LAPACK call per triangle, and a multi-threaded OpenBLAS can take seconds to minutes for
that (its threads hand off on every call, worst on a busy CPU); with one thread it takes microseconds a
triangle, bit for bit the same. (Moving the query points off the pixel lattice, or another triangulator,
would not give the same images: points on the border leave the hull, values at exactly x.5 round the
other way, and cocircular kept pixels can be split along the other diagonal.)

What every curve of an image shares (its random mask, the fully blurred image, both WebP sizes and the
model's predictions on them) is computed once, in :class:`PicBase`. The rest of a curve's time is qhull's
triangulation and the WebP encoding of each threshold's image, both needed as they are for the
reference's numbers.

RISE (Petsiuk et al., 2018): insert pixels in saliency order into a blurred copy (insertion) or remove
them into zeros (deletion), ``step`` pixels at a time; the AUC is the trapezoid rule on a unit x-axis.
"""

from __future__ import annotations

import functools
import io
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from .._lazy import lazy
from ..smoothing import smooth
from .base import register_metric

torch = lazy("torch")

if TYPE_CHECKING:
    from threadpoolctl import ThreadpoolController

__all__ = [
    "PIC_THRESHOLDS",
    "PicBase",
    "PicCurve",
    "PicSkip",
    "aggregate_curves",
    "blur_from_mask",
    "pic_curves",
    "pic_from_predictions",
    "random_mask",
    "rise_curves",
    "webp_size",
]

for _name, _higher, _summary in (
    ("sic_auc", True, "area under the softmax information curve (PIC), per image"),
    ("aic_auc", True, "area under the accuracy information curve (PIC), per image"),
    ("sic_median_curve", True, "area under the median SIC curve over images (the PIC paper's aggregate)"),
    ("aic_median_curve", True, "area under the median AIC curve over images (the PIC paper's aggregate)"),
    ("insertion_auc", True, "RISE insertion: area under the class probability as salient pixels are inserted"),
    ("deletion_auc", False, "RISE deletion: area under the class probability as salient pixels are deleted"),
):
    register_metric(_name, task="insertion", higher_is_better=_higher, summary=_summary)(None)

#: Fractions of the most salient pixels kept, as in the reference.
PIC_THRESHOLDS = (0.005, 0.01, 0.02, 0.03, 0.04, 0.05, 0.07, 0.10, 0.13, 0.21, 0.34, 0.5, 0.75)

Predict = Callable[[np.ndarray], np.ndarray]  # uint8 [B, H, W, C] -> probabilities [B, num_classes]


@dataclass(frozen=True)
class PicCurve:
    """One image's information curve.

    Attributes:
        x: 1001 points in [0, 1].
        y: Normalised prediction at each point.
        auc: Area under the curve (trapezoid rule).
    """

    x: np.ndarray
    y: np.ndarray
    auc: float


@dataclass(frozen=True)
class PicSkip:
    """The image is skipped, for this reason (recorded with the results, never silently dropped)."""

    reason: str


def random_mask(height: int, width: int, fraction: float = 0.01, seed: int = 0) -> np.ndarray:
    """A seeded random pixel mask with ``int(H * W * fraction)`` true pixels (fixed per image)."""
    rng = np.random.default_rng(seed)
    mask = np.zeros(height * width, dtype=bool)
    mask[rng.choice(height * width, size=int(height * width * fraction), replace=False)] = True
    return mask.reshape(height, width)


@functools.cache
def _blas_controller() -> ThreadpoolController:
    import scipy.spatial  # noqa: F401  (scipy is imported where it is used; its OpenBLAS must be loaded first)
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController()


@contextmanager
def _one_blas_thread() -> Iterator[None]:
    """Run the block with one BLAS thread (the per-triangle LAPACK calls of ``Delaunay.transform``)."""
    with _blas_controller().limit(limits=1, user_api="blas"):
        yield


def blur_from_mask(image: np.ndarray, keep: np.ndarray) -> np.ndarray:
    """Reconstruct the image from the kept pixels by linear interpolation (mean colour outside their hull).

    The four corners are always kept. One triangulation serves all channels. The result is the
    reference's ``create_blurred_image`` bit for bit (same triangulation, same interpolation), computed
    with one BLAS thread (see the module's docstring).

    Args:
        image: ``[H, W, C]`` or ``[H, W]`` array (uint8 is rounded back to uint8).
        keep: Boolean ``[H, W]`` of the pixels taken from the image.

    Returns:
        The reconstructed image, same shape and dtype.
    """
    with _one_blas_thread():
        return _blur(image, keep)


def _blur(image: np.ndarray, keep: np.ndarray) -> np.ndarray:
    """:func:`blur_from_mask` without the BLAS thread limit (the caller holds it)."""
    grey = image.ndim == 2
    img = image[..., None] if grey else image
    h, w = keep.shape
    keep = keep.copy()
    keep[[0, 0, h - 1, h - 1], [0, w - 1, 0, w - 1]] = True
    if keep.all():
        return image
    known = np.argwhere(keep)
    unknown = np.argwhere(~keep)
    values = img[keep].astype(np.float64)
    from scipy import interpolate
    from scipy.spatial import Delaunay

    interp = interpolate.LinearNDInterpolator(Delaunay(known), values, fill_value=np.nan)
    filled = interp(unknown)
    outside = np.isnan(filled)
    if outside.any():  # never with the corners kept, unless the walk fails
        filled = np.where(outside, img.mean(axis=(0, 1))[None, :], filled)
    out = img.astype(np.float32) * keep[..., None]
    out[~keep] = filled
    if np.issubdtype(image.dtype, np.integer):
        out = np.round(out)
    out = out.astype(image.dtype)
    return out[..., 0] if grey else out


def webp_size(image: np.ndarray) -> int:
    """Bytes of the image as lossless WebP: the estimate of its information."""
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="webp", lossless=True, quality=100)
    return buf.tell()


def pic_from_predictions(
    entropies: Sequence[float], scores: Sequence[float], min_pred: float = 0.8, keep_monotonous: bool = True,
    points: int = 1000,
) -> PicCurve | PicSkip:
    """The information curve from the entropies and scores of [original, fully blurred, thresholds...].

    Args:
        entropies: WebP sizes of the original, the fully blurred image and each threshold's image.
        scores: The model's score (SIC: softmax of the original top-1; AIC: 1 if the top-1 is unchanged)
            of the same images.
        min_pred: Skip images whose original score is below this.
        keep_monotonous: Use the running maximum of the normalised score (as in the paper).
        points: Number of curve points before the final point 1.

    Returns:
        The curve, or the reason to skip the image.
    """
    e_orig, e_blur, *e_thr = entropies
    p_orig, p_blur, *p_thr = scores
    if p_orig < min_pred:
        return PicSkip(f"prediction on the original image {p_orig:.4g} < min_pred {min_pred}")
    if e_blur >= e_orig:
        return PicSkip(f"fully blurred image has no less information ({e_blur} >= {e_orig} bytes)")
    if p_blur >= p_orig:
        return PicSkip(f"prediction on the fully blurred image {p_blur:.4g} >= original {p_orig:.4g}")
    pairs, best = [], 0.0
    for e, p in zip(e_thr, p_thr, strict=True):
        ne = float(np.clip((e - e_blur) / (e_orig - e_blur), 0.0, 1.0))
        npred = float(np.clip((p - p_blur) / (p_orig - p_blur), 0.0, 1.0))
        best = max(best, npred)
        pairs.append((ne, best if keep_monotonous else npred))
    pairs += [(0.0, 0.0), (1.0, 1.0)]
    xs, ys = zip(*pairs, strict=True)
    from scipy import interpolate

    f = interpolate.interp1d(x=xs, y=ys)
    x = np.linspace(0.0, 1.0, num=points, endpoint=False)
    y = np.asarray([f(v) for v in x])
    x, y = np.append(x, 1.0), np.append(y, 1.0)
    return PicCurve(x=x, y=y, auc=float(np.trapezoid(y, x)))


@dataclass(frozen=True)
class PicBase:
    """What every saliency map of one image shares, computed once per image.

    The original and the fully blurred image, their information and the model's probabilities.
    """

    image: np.ndarray
    mask: np.ndarray
    entropies: tuple[int, int]
    probs: np.ndarray  # [2, num_classes]

    @classmethod
    def of(cls, image: np.ndarray, mask: np.ndarray, predict: Predict) -> PicBase:
        """Compute the shared part for one image and its random mask."""
        if image.dtype != np.uint8:
            raise ValueError(f"the image must be uint8, got {image.dtype}")
        if mask.shape != image.shape[:2]:
            raise ValueError(f"mask {mask.shape} must be {image.shape[:2]}")
        pair = [image, blur_from_mask(image, mask)]
        return cls(image, mask, (webp_size(pair[0]), webp_size(pair[1])), np.asarray(predict(np.stack(pair))))


def pic_curves(
    base: PicBase, saliency: np.ndarray, predict: Predict, thresholds: Sequence[float] = PIC_THRESHOLDS,
    min_pred: float = 0.8, keep_monotonous: bool = True,
) -> dict[str, PicCurve | PicSkip]:
    """SIC and AIC of one saliency map, all thresholds in one batched model call.

    Args:
        base: The image's shared part (:meth:`PicBase.of`).
        saliency: ``[H, W]``; higher is more important (apply ``abs`` before if wanted).
        predict: ``uint8 [B, H, W, C] -> probabilities [B, num_classes]``.
        thresholds: Fractions of salient pixels, ascending.
        min_pred: SIC skip threshold (AIC: the original is always its own top-1, so never skipped by it).
        keep_monotonous: See :func:`pic_from_predictions`.

    Returns:
        ``{"sic": ..., "aic": ...}``.

    Raises:
        ValueError: On a saliency map of the wrong shape.
    """
    if saliency.shape != base.image.shape[:2]:
        raise ValueError(f"saliency {saliency.shape} must be {base.image.shape[:2]}")
    quantiles = np.quantile(saliency, [1 - t for t in thresholds])  # the values of one call per threshold
    with _one_blas_thread():
        images = [_blur(base.image, (saliency >= q) | base.mask) for q in quantiles]
    entropies = [*base.entropies, *(webp_size(im) for im in images)]
    probs = np.concatenate([base.probs, np.asarray(predict(np.stack(images)))])
    top = int(probs[0].argmax())
    sic = probs[:, top]
    aic = (probs.argmax(1) == top).astype(np.float64)
    return {
        "sic": pic_from_predictions(entropies, sic, min_pred, keep_monotonous),
        "aic": pic_from_predictions(entropies, aic, 0.0, keep_monotonous),
    }


def aggregate_curves(curves: Sequence[PicCurve], method: str = "median") -> PicCurve:
    """Median (default) or mean curve of several images, and its AUC.

    Raises:
        ValueError: On no curves or an unknown method.
    """
    if not curves:
        raise ValueError("no curves to aggregate")
    ys = np.stack([c.y for c in curves])
    if method == "median":
        y = np.median(ys, axis=0)
    elif method == "mean":
        y = np.mean(ys, axis=0)
    else:
        raise ValueError(f"unknown aggregation {method!r}; use 'median' or 'mean'")
    x = curves[0].x
    return PicCurve(x=x, y=y, auc=float(np.trapezoid(y, x)))


def rise_curves(
    model: torch.nn.Module, x: torch.Tensor, saliency: torch.Tensor, target: int, step: int = 224,
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
