"""Insertion curves: Performance Information Curves (SIC, AIC); RISE insertion / deletion is :mod:`.rise`.

PIC (Kapishnikov et al., 2019): the image is reconstructed from its most salient pixels plus a fixed
random 1% of pixels by linear interpolation; the x-axis is the normalised information of that image
(its lossless WebP size), the y-axis the normalised prediction: the softmax of the original top-1 class
(SIC) or whether the top-1 class is unchanged (AIC). Unlike the reference implementation, every
threshold's image goes through the model in one batch, and SIC and AIC come from the same predictions.

Speed: the reconstruction uses the reference's triangulation (scipy's qhull on the kept pixels, in the same
order, so cocircular pixels are split along the same diagonals) but not its point location and barycentric
transforms: scipy computes the transforms with one LAPACK call per triangle, which with a multi-threaded OpenBLAS
took 12 s for one 224x224 image's 1% mask on a busy 2-core CPU, and with one BLAS thread is still most of the time
left after the triangulation at dense thresholds. Instead each triangle is rasterised onto the pixel grid with
exact integer barycentric weights: a missing pixel's value is an exact rational rounded once, the reference's
value to within float rounding, and both become the same uint8 (see :func:`_lattice_barycentric`). What is
left is qhull (degenerate on lattice points: most of a dense threshold's time) and the lossless WebP encodings,
both needed as they are for the reference's numbers; they run on a few threads, as both release the GIL. (Moving
the query points off the lattice, another triangulator, or qhull on fewer points would not give the same images:
points on the border leave the hull, values at exactly x.5 round the other way, and cocircular kept pixels are
split along other diagonals, which moves the curves by 1e-2 and more.)

What every curve of an image shares (its random mask, the fully blurred image, both WebP sizes, the model's
predictions on them, and every reconstruction two maps or two thresholds have in common) is computed once, in
:class:`PicBase`; :func:`pic_curves_many` sends the thresholds' images of several maps through the model in
batches.

The module needs no torch (numpy, Pillow and scipy): the report reads its curves without it.
"""

from __future__ import annotations

import io
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
from PIL import Image

__all__ = [
    "PIC_THRESHOLDS",
    "PicBase",
    "PicCurve",
    "PicSkip",
    "aggregate_curves",
    "blur_from_mask",
    "pic_curves",
    "pic_curves_many",
    "pic_from_predictions",
    "random_mask",
    "webp_size",
]

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


def blur_from_mask(image: np.ndarray, keep: np.ndarray) -> np.ndarray:
    """Reconstruct the image from the kept pixels by linear interpolation (mean colour outside their hull).

    The four corners are always kept. The result is the reference's ``create_blurred_image`` bit for bit: the
    same triangulation (scipy's :class:`~scipy.spatial.Delaunay` of the kept pixels in the same order), and
    each missing pixel the exact linear interpolation in its triangle (see :func:`_lattice_barycentric`),
    which scipy's ``griddata`` computes to within float rounding, far below the float32 and integer rounding
    that follow. One triangulation serves all channels.

    Args:
        image: ``[H, W, C]`` or ``[H, W]`` array (uint8 is rounded back to uint8).
        keep: Boolean ``[H, W]`` of the pixels taken from the image.

    Returns:
        The reconstructed image, same shape and dtype.

    Example:
        >>> img = np.array([[0, 0, 8], [0, 0, 0], [4, 0, 12]], dtype=np.uint8)
        >>> blur_from_mask(img, img > 0)[1].tolist()  # linear interpolation between the corners
        [2, 6, 10]
    """
    grey = image.ndim == 2
    img = image[..., None] if grey else image
    keep = _with_corners(keep)
    if keep.all():
        return image
    from scipy.spatial import Delaunay

    known = np.argwhere(keep)
    simplices = Delaunay(known).simplices
    rows, cols, vertices, weights, area2 = _lattice_barycentric(known, simplices, ~keep)
    values = img[known[:, 0], known[:, 1]].astype(np.float64)  # [n, C]
    w = weights.astype(np.float64)  # integer weights and values: every product and sum below is exact
    filled = w[:, :1] * values[vertices[:, 0]] + w[:, 1:2] * values[vertices[:, 1]] + w[:, 2:] * values[vertices[:, 2]]
    filled /= area2[:, None]
    out = img.astype(np.float32) * keep[..., None]
    out[rows, cols] = filled
    covered = keep.copy()
    covered[rows, cols] = True
    if not covered.all():  # never with the corners kept (qhull's triangles tile their hull)
        out[~covered] = img.mean(axis=(0, 1))
    if np.issubdtype(image.dtype, np.integer):
        out = np.round(out)
    out = out.astype(image.dtype)
    return out[..., 0] if grey else out


def _with_corners(keep: np.ndarray) -> np.ndarray:
    """A copy of the mask with its four corners set (the reference always keeps them)."""
    h, w = keep.shape
    keep = keep.copy()
    keep[[0, 0, h - 1, h - 1], [0, w - 1, 0, w - 1]] = True
    return keep


def _lattice_barycentric(
    points: np.ndarray, simplices: np.ndarray, query: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The triangles' lattice points where ``query`` is true, with their exact barycentric weights.

    Each triangle is rasterised onto the pixel grid: a lattice point of its bounding box is inside (or on its
    border) when its three integer edge functions are non-negative, and those edge functions are its
    barycentric weights times twice the triangle's area, exact integers. The interpolated value of a point is
    then one division of an exact integer combination, correctly rounded, and the same from either triangle
    of a shared edge (linear interpolation is continuous). Triangles of area 1/2 hold no lattice point but
    their vertices (Pick's theorem) and are skipped, and so are flat ones; that leaves little to rasterise even
    when most pixels are kept.

    Args:
        points: Integer ``[n, 2]`` vertices (row, column).
        simplices: ``[m, 3]`` indices into ``points``.
        query: Boolean ``[H, W]``: the lattice points wanted.

    Returns:
        ``rows, cols`` of the points found (a point on a shared edge may appear twice, with the same value),
        ``vertices`` ``[k, 3]`` (indices into ``points``), integer ``weights`` ``[k, 3]`` and ``area2`` ``[k]``
        (their sum: twice the triangle's area).
    """
    p = points.astype(np.int32 if max(query.shape) < 2**14 else np.int64)  # no overflow in the products
    a, b, c = p[simplices[:, 0]], p[simplices[:, 1]], p[simplices[:, 2]]
    area2 = (b[:, 0] - a[:, 0]) * (c[:, 1] - a[:, 1]) - (b[:, 1] - a[:, 1]) * (c[:, 0] - a[:, 0])
    big = np.flatnonzero(np.abs(area2) > 1)
    simp = simplices[big]
    flip = area2[big] < 0  # counter-clockwise: swap two vertices
    simp[flip, 1], simp[flip, 2] = simp[flip, 2], simp[flip, 1].copy()
    area2 = np.abs(area2[big])
    (ar, ac), (br, bc), (cr, cc) = (p[simp[:, i]].T for i in range(3))
    lo_r, lo_c = np.minimum(np.minimum(ar, br), cr), np.minimum(np.minimum(ac, bc), cc)
    width = np.maximum(np.maximum(ac, bc), cc) - lo_c + 1
    count = (np.maximum(np.maximum(ar, br), cr) - lo_r + 1) * width
    tri = np.repeat(np.arange(len(simp), dtype=p.dtype), count)  # each triangle's bounding box, row by row
    k = np.arange(int(count.sum()), dtype=p.dtype) - np.repeat(np.cumsum(count, dtype=p.dtype) - count, count)
    dr, dc = np.divmod(k, width[tri])
    rows, cols = lo_r[tri] + dr, lo_c[tri] + dc
    wanted = np.flatnonzero(query[rows, cols])
    tri, rows, cols = tri[wanted], rows[wanted], cols[wanted]
    # twice the areas of (point, b, c) and (point, c, a); the third is the rest (integers: exact)
    pbr, pbc, pcr, pcc = br[tri] - rows, bc[tri] - cols, cr[tri] - rows, cc[tri] - cols
    w0 = pbr * pcc - pbc * pcr
    w1 = pcr * (ac[tri] - cols) - pcc * (ar[tri] - rows)
    w2 = area2[tri] - w0 - w1
    inside = np.flatnonzero((w0 >= 0) & (w1 >= 0) & (w2 >= 0))
    tri = tri[inside]
    return (rows[inside], cols[inside], simp[tri], np.stack([w0[inside], w1[inside], w2[inside]], axis=1),
            area2[tri])


def webp_size(image: np.ndarray) -> int:
    """Bytes of the image as lossless WebP: the estimate of its information."""
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="webp", lossless=True, quality=100)
    return buf.tell()


def pic_from_predictions(
    entropies: Sequence[float], scores: Sequence[float] | np.ndarray, min_pred: float = 0.8,
    keep_monotonous: bool = True,
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

    The original and the fully blurred image, their information and the model's probabilities; and, as the
    maps' curves are computed, the information and probabilities of every image already reconstructed, by its
    set of kept pixels (the original's and the fully blurred image's from the start): a threshold that keeps
    every pixel (a sparse map), two thresholds that keep the same pixels (ties) and two maps that order the
    pixels alike (a variant that rescales a map) reuse them instead of reconstructing, encoding and predicting
    again.
    """

    image: np.ndarray
    mask: np.ndarray
    entropies: tuple[int, int]
    probs: np.ndarray  # [2, num_classes]
    seen: dict[bytes, tuple[int, np.ndarray]] = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        for keep, entropy, probs in ((np.ones(self.mask.shape, dtype=bool), self.entropies[0], self.probs[0]),
                                     (self.mask, self.entropies[1], self.probs[1])):
            self.seen[_key(keep)] = (entropy, probs)

    @classmethod
    def of(cls, image: np.ndarray, mask: np.ndarray, predict: Predict) -> PicBase:
        """Compute the shared part for one image and its random mask."""
        if image.dtype != np.uint8:
            raise ValueError(f"the image must be uint8, got {image.dtype}")
        if mask.shape != image.shape[:2]:
            raise ValueError(f"mask {mask.shape} must be {image.shape[:2]}")
        with ThreadPoolExecutor(1) as pool:
            original = pool.submit(webp_size, image)
            blurred = blur_from_mask(image, mask)
            entropies = (original.result(), webp_size(blurred))
        return cls(image, mask, entropies, np.asarray(predict(np.stack([image, blurred]))))


def _key(keep: np.ndarray) -> bytes:
    """The set of pixels an image is reconstructed from (its corners always kept), as a dictionary key."""
    return np.packbits(_with_corners(keep)).tobytes()


def _default_workers() -> int:
    """The CPUs this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


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
    """
    return pic_curves_many(base, [saliency], predict, thresholds, min_pred, keep_monotonous)[0]


def pic_curves_many(
    base: PicBase, saliencies: Sequence[np.ndarray], predict: Predict, thresholds: Sequence[float] = PIC_THRESHOLDS,
    min_pred: float = 0.8, keep_monotonous: bool = True, batch: int = 64, workers: int | None = None,
) -> list[dict[str, PicCurve | PicSkip]]:
    """SIC and AIC of several saliency maps of one image, their thresholds' images batched through the model.

    Each distinct set of kept pixels is reconstructed, encoded and predicted once per image (see
    :class:`PicBase`); the reconstructions and WebP encodings run on ``workers`` threads (qhull and the WebP
    encoder release the GIL), the model sees at most ``batch`` images a call.

    Args:
        base: The image's shared part (:meth:`PicBase.of`).
        saliencies: ``[H, W]`` maps; higher is more important (apply ``abs`` before if wanted).
        predict: ``uint8 [B, H, W, C] -> probabilities [B, num_classes]``.
        thresholds: Fractions of salient pixels, ascending.
        min_pred: SIC skip threshold (AIC: the original is always its own top-1, so never skipped by it).
        keep_monotonous: See :func:`pic_from_predictions`.
        batch: Most images per model call.
        workers: Threads for the reconstructions and encodings (default: the CPUs this process may use).

    Returns:
        ``{"sic": ..., "aic": ...}`` for each map, in order.

    Raises:
        ValueError: On a saliency map of the wrong shape.
    """
    keys: list[list[bytes]] = []
    todo: dict[bytes, np.ndarray] = {}
    for saliency in saliencies:
        if saliency.shape != base.image.shape[:2]:
            raise ValueError(f"saliency {saliency.shape} must be {base.image.shape[:2]}")
        quantiles = np.quantile(saliency, [1 - t for t in thresholds])  # the values of one call per threshold
        keeps = [(saliency >= q) | base.mask for q in quantiles]
        keys.append([_key(k) for k in keeps])
        for key, keep in zip(keys[-1], keeps, strict=True):
            if key not in base.seen:
                todo.setdefault(key, keep)
    pending = list(todo.items())

    def render(keep: np.ndarray) -> tuple[np.ndarray, int]:
        image = blur_from_mask(base.image, keep)
        return image, webp_size(image)

    if pending:
        with ThreadPoolExecutor(max(1, min(workers or _default_workers(), len(pending)))) as pool:
            for start in range(0, len(pending), batch):
                chunk = pending[start:start + batch]
                chunk.sort(key=lambda kv: -int(kv[1].sum()))  # the densest first: qhull's longest triangulations
                images, entropies = zip(*pool.map(render, [keep for _, keep in chunk]), strict=True)
                probs = np.asarray(predict(np.stack(images)))
                for (key, _), entropy, p in zip(chunk, entropies, probs, strict=True):
                    base.seen[key] = (entropy, p)
    top = int(base.probs[0].argmax())
    out = []
    for map_keys in keys:
        entropies = [*base.entropies, *(base.seen[k][0] for k in map_keys)]
        probs = np.concatenate([base.probs, np.stack([base.seen[k][1] for k in map_keys])])
        sic = probs[:, top]
        aic = (probs.argmax(1) == top).astype(np.float64)
        out.append({
            "sic": pic_from_predictions(entropies, sic, min_pred, keep_monotonous),
            "aic": pic_from_predictions(entropies, aic, 0.0, keep_monotonous),
        })
    return out


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
