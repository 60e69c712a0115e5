"""VAR: refine attribution maps by their distribution over a set of classes.

Walter et al. compute, for each class ``k`` of a class set of size ``K``, the raw map ``H_k`` of one
attribution method, turn the maps into a distribution over the classes at every pixel and keep, for
each class, only the pixels where that class is more likely than uniform::

    q_k   = mean_{t in T} softmax_k(H_k / t)          T = (1, 5, 100)
    H'_c  = H_c * q_c * 1[q_c - 1/K > tau]            tau = 0

The authors' public code differs from the paper text (``|H|``, one temperature used as a multiplier,
per-channel distributions, ``tau = 0.1`` for predefined class sets and ``0.01`` for ranked ones); both are
presets, and every parameter can be set on its own. The parameters (:class:`VARConfig`), the presets and their
bounds live in the light module :mod:`attrdist.presets` and are re-exported here.

:class:`VAR` wraps any attribution method: ``VAR(method, classes=..., preset=...).attribute(x)`` computes
the raw maps of the class set once and returns a :class:`VARResult`, whose :meth:`VARResult.refine`
re-applies VAR with other parameters to the same raw maps. That is the only path from raw maps to
refined maps; :func:`refine` is the operator itself, for maps computed elsewhere.

The distribution of float32 maps is computed in float32 when their scale is O(1) (any joint normalisation
makes it so, and so do unnormalised maps of magnitude 1e-3 to 1e3) and they are not smoothed first, and in float64
otherwise, decided per call
(:func:`working_dtype`): maps of tiny magnitude (LRP relevances of ~1e-8 under the ``paper`` preset) do not round
to a uniform distribution. The softmax subtracts the per-pixel maximum so that maps of magnitude 1e4 do not
overflow. ``q`` is returned in float64 either way.
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from typing import TYPE_CHECKING

import torch

from .classes import DEFAULT_CLASSES, ClassesLike, ClassSet, is_ranked, parse_class_set
from .presets import (
    DEFAULT_PRESET,
    PRESETS,
    TAU_BOUNDS,
    OpenInterval,
    VARConfig,
    get_preset,
    preset_margins,
    variant_config,
)
from .smoothing import smooth

if TYPE_CHECKING:
    from torch import Tensor

    from .methods.base import Attributor


__all__ = [
    "DEFAULT_PRESET",
    "NORMALIZATIONS",
    "PRESETS",
    "TAU_BOUNDS",
    "VAR",
    "ClassAgnosticWarning",
    "VARConfig",
    "VAROutput",
    "VARResult",
    "OpenInterval",
    "get_preset",
    "joint_scale",
    "kept_nothing",
    "kept_share",
    "preset_margins",
    "refine",
    "variant_config",
    "working_dtype",
]


#: A pixel counts as a tie of its K classes (a uniform distribution: no class keeps it) when the spread of its K
#: values is at most this many units in the last place of the maps' own dtype, relative to the largest of them:
#: identical maps and float rounding of them, at any magnitude (maps of 1e-15 keep what float64 resolves).
TIE_ULPS = 2





class ClassAgnosticWarning(UserWarning):
    """The K maps given to VAR are identical, so the class distribution is uniform everywhere."""


def joint_scale(maps: Tensor, normalize: str, quantile: float = 0.99) -> Tensor:
    """One positive scale per image, shared by its K maps.

    Args:
        maps: Attribution maps ``[B, K, ...]``.
        normalize: ``"none"``, ``"max"`` or ``"quantile"``.
        quantile: The quantile of ``|H|`` over all K maps used by ``"quantile"``.

    Returns:
        Scales ``[B]``; 1 where the maps are all zero or ``normalize == "none"``.
    """
    return NORMALIZATIONS[normalize](maps.flatten(1), quantile)


def _scale_none(flat: Tensor, quantile: float) -> Tensor:
    return torch.ones(flat.shape[0], dtype=flat.dtype, device=flat.device)  # no pass over the maps


def _scale_max(flat: Tensor, quantile: float) -> Tensor:
    s = flat.abs().amax(dim=1)
    return torch.where(s > 0, s, torch.ones_like(s))


def _scale_quantile(flat: Tensor, quantile: float) -> Tensor:
    # torch.quantile is limited to 16M elements; the k-th smallest value is the (n - k + 1)-th largest
    flat_abs = flat.abs()
    n = flat_abs.shape[1]
    k = min(n, max(1, int(round(quantile * (n - 1))) + 1))
    s = _kth_largest(flat_abs, n - k + 1)
    return torch.where(s > 0, s, _scale_max(flat_abs, quantile))


def _kth_largest(flat: Tensor, top: int) -> Tensor:
    """The ``top``-th largest value of every row of ``flat`` ``[B, N]``, exactly.

    Among the largest few (the 99th percentile), the values at or above a bound read off a sample of every 17th
    value are the only candidates: ``topk`` over them gives the exact answer when they are at least ``top`` (4x
    faster than ``topk`` over all, which is the answer otherwise, and on GPUs); ``kthvalue`` for a value further
    down.
    """
    n = flat.shape[1]
    if top > n // 8:
        return flat.kthvalue(n - top + 1, dim=1).values
    if flat.device.type != "cpu":  # a GPU's topk is one batched selection; the shortcut would add syncs and a loop
        return flat.topk(top, dim=1, sorted=False).values.amin(1)
    sample = flat[:, ::17]
    below = min(sample.shape[1], 2 * math.ceil(top / 17) + 8)  # twice the expected rank: a bound below the answer
    bound = sample.topk(below, dim=1, sorted=False).values.amin(1, keepdim=True)
    candidates = flat >= bound
    counts = candidates.sum(1)
    if bool((counts >= top).all()):
        rows = torch.split(flat[candidates], counts.tolist())  # one selection for all rows, row after row
        return torch.stack([row.topk(top, sorted=False).values.amin() for row in rows])
    return flat.topk(top, dim=1, sorted=False).values.amin(1)


#: Joint normalisations, the single list used by the operator, the CLI and the benchmarks (the names are
#: :data:`~attrdist.presets.Normalization`'s).
NORMALIZATIONS: dict[str, Callable[[Tensor, float], Tensor]] = {
    "none": _scale_none, "max": _scale_max, "quantile": _scale_quantile}




@dataclass(kw_only=True)
class VAROutput:
    """Result of :func:`refine`.

    Attributes:
        refined: Refined maps ``H'_k`` for every class of the set, same shape and dtype as the input.
        q: Per-pixel class distribution, same shape, float64 (computed in :func:`working_dtype`: float32 maps of
            O(1) scale give a float32 distribution, whose K values sum to 1 within 1e-7).
        keep: Boolean mask of the kept pixels, same shape.
        config: The parameters used.
    """

    refined: Tensor
    q: Tensor
    keep: Tensor
    config: VARConfig


def refine(
    maps: Tensor, preset: str | VARConfig | None = None, *, ranked: bool = False, warn_identical: bool = True,
    **overrides: object,
) -> VAROutput:
    """The VAR operator on K attribution maps of the same images.

    Args:
        maps: Raw maps ``[B, K, H, W]`` (any trailing shape works: ``[B, K, C, H, W]`` gives one distribution
            per channel), one per class of the set, never normalised per map.
        preset: A key of :data:`PRESETS` (default :data:`DEFAULT_PRESET`) or a :class:`VARConfig`.
        ranked: The class set was chosen by rank (selects ``tau_ranked``).
        warn_identical: Warn (:class:`ClassAgnosticWarning`) when the K maps of an image are identical.
        **overrides: Fields of :class:`VARConfig` to override.

    Returns:
        The refined maps for every class, the distribution ``q`` and the kept-pixel mask.

    Raises:
        ValueError: If ``maps`` has fewer than 3 dimensions, fewer than 2 classes, or NaN/inf values.

    Example:
        >>> maps = torch.randn(2, 4, 7, 7)
        >>> out = refine(maps)
        >>> out.refined.shape, round(float(out.q.sum(1).mean()), 6)
        (torch.Size([2, 4, 7, 7]), 1.0)
    """
    cfg = get_preset(preset, **overrides)
    peak = _checked_peak(maps)
    if warn_identical:
        _warn_identical(maps)
    # the joint scale is an order statistic (or the maximum) of |H|: found on the maps as they are (the same value
    # as in float64, with half the data to move), then the distribution in float32 or float64 (working_dtype)
    scale = joint_scale(maps.detach(), cfg.normalize, cfg.quantile)
    dtype = working_dtype(maps, cfg, scale, peak=peak)
    h = maps.detach().to(dtype)
    h = h.abs() if cfg.magnitude == "abs" else (h.clamp(min=0) if cfg.magnitude == "positive" else h)
    if cfg.normalize != "none":
        h = h / scale.to(dtype).view(-1, *([1] * (h.dim() - 1)))
    if cfg.smooth > 0:
        h = _smooth_maps(h, cfg.smooth)
    q, excess = _distribution(h, cfg, tie_eps=TIE_ULPS * torch.finfo(maps.dtype).eps)
    keep = _kept(maps, q, excess, cfg, ranked)
    weight = q if cfg.power == 1 else q.pow(cfg.power)
    refined = maps * (weight * keep).to(maps.dtype)  # a product with the mask: 5x faster than torch.where on CPUs
    return VAROutput(refined=refined, q=q.to(torch.float64), keep=keep, config=cfg)


def _checked_peak(maps: Tensor) -> Tensor:
    """The largest ``|H|`` of every image ``[B]``, after checking the maps: a tensor ``[B, K >= 2, ...]``, finite.

    Raises:
        TypeError: If ``maps`` is not a tensor.
        ValueError: If ``maps`` has fewer than 3 dimensions, fewer than 2 classes, or NaN/inf values.
    """
    if not isinstance(maps, torch.Tensor):
        raise TypeError(f"maps must be a torch.Tensor, got {type(maps).__name__}")
    if maps.dim() < 3:
        raise ValueError(f"maps must have shape [B, K, H, W] (at least 3 dims), got {tuple(maps.shape)}")
    k = maps.shape[1]
    if k < 2:
        raise ValueError(
            f"VAR needs at least 2 classes to form a distribution, got K={k} (maps shape {tuple(maps.shape)})"
        )
    flat = maps.detach().flatten(1)
    high, low = flat.amax(1), flat.amin(1)  # NaN where a map holds a NaN: cheaper than isfinite over every value
    if not bool((torch.isfinite(high) & torch.isfinite(low)).all()):
        bad = (~torch.isfinite(maps)).flatten(2).any(-1).nonzero().tolist()
        raise ValueError(f"maps contain NaN or inf values at (sample, class) {bad[:5]}")
    return torch.maximum(high.abs(), low.abs())


def _warn_identical(maps: Tensor) -> None:
    """Warn (:class:`ClassAgnosticWarning`, at the caller of :func:`refine`) where an image's K maps are identical."""
    same = (maps.amax(1) == maps.amin(1)).flatten(1).all(dim=1)  # every pixel's K values equal
    if same.any():
        warnings.warn(
            f"the {maps.shape[1]} maps of sample(s) {same.nonzero().flatten().tolist()} are identical across "
            "classes (a class-agnostic method?): their class distribution is uniform and VAR keeps "
            "no pixel",
            ClassAgnosticWarning,
            stacklevel=3,
        )


def _kept(maps: Tensor, q: Tensor, excess: Tensor, cfg: VARConfig, ranked: bool) -> Tensor:
    """The kept pixels: above the margin (a constant, or a quantile per map), plus ``min_keep``'s; all with no gate."""
    if cfg.gate == "none":
        return torch.ones_like(q, dtype=torch.bool)
    margin = (excess.flatten(2).quantile(cfg.tau_quantile, dim=2).view(*q.shape[:2], *([1] * (q.dim() - 2)))
              if cfg.tau_quantile is not None else cfg.margin(ranked))
    keep = excess > margin
    if cfg.min_keep > 0:
        keep = _keep_at_least(keep, excess, maps.detach() > 0, cfg.min_keep)
    return keep


#: Unnormalised float32 maps whose largest ``|H|`` per image lies in this range are refined in float32.
FLOAT32_RANGE = (1e-3, 1e3)


def working_dtype(maps: Tensor, cfg: VARConfig, scale: Tensor, *, peak: Tensor | None = None) -> torch.dtype:
    """The dtype VAR computes the distribution of ``maps`` in: float32 where it is exact enough, else float64.

    float32 (or lower precision) maps whose scale is O(1) are refined in float32: jointly normalised maps
    (``normalize`` ``max`` or ``quantile``), and unnormalised maps whose largest ``|H|`` per image lies in
    :data:`FLOAT32_RANGE`, smoothed or not. Float64 maps, maps of a tiny or huge scale (LRP relevances of ~1e-9
    under the ``paper`` preset) and per-map quantile margins (``tau_quantile``, an order statistic of the excess)
    take float64. ``tests/test_var.py`` checks the float32 path against the float64 result (the same kept pixels,
    ``q`` within 1e-5) for every preset at three scales.

    Args:
        maps: The raw maps ``[B, K, ...]``.
        cfg: The VAR configuration.
        scale: Their joint scales ``[B]`` (:func:`joint_scale`).
        peak: Their largest ``|H|`` per image ``[B]``, if known (else found here).
    """
    if maps.dtype == torch.float64 or cfg.tau_quantile is not None:
        return torch.float64
    if cfg.normalize != "none":
        return torch.float32
    if peak is None:
        peak = maps.detach().abs().flatten(1).amax(1)
    low, high = FLOAT32_RANGE
    return torch.float32 if bool(((peak >= low) & (peak <= high)).all()) else torch.float64


#: ``expm1`` of anything below this is -1 exactly in float64 (and float32): ``exp(-40) = 4e-18`` is under half a
#: unit in the last place of 1. Clamping there changes no value, and keeps ``expm1`` off its slow path (maps of a
#: large range at temperature 0.1 reach -1000 and more, where it is 3x slower).
EXPM1_FLOOR = -40.0


def _distribution(h: Tensor, cfg: VARConfig, tie_eps: float) -> tuple[Tensor, Tensor]:
    """The class distribution ``q`` of maps ``h`` ``[B, K, ...]`` and its excess ``q - 1/K``, in ``h``'s dtype.

    The excess is computed without cancellation: with ``z = (H - max_k H) / t`` and ``e = expm1(z)``,
    ``softmax_c(z) - 1/K = (e_c - mean_k e_k) / (K + sum_k e_k)``, whose error is a few units in the last place of
    ``e`` (not of 1) at any magnitude of ``H`` (``q - 1/K`` itself loses every digit below 1e-17 in float64); the
    softmax is ``(e_c + 1) / (K + sum_k e_k)`` from the same ``e``. Pixels whose K values are equal up to
    ``tie_eps`` of their largest magnitude are ties: their excess is exactly 0.
    """
    k, n = h.shape[1], len(cfg.temperatures)
    high, low = h.amax(1, keepdim=True), h.amin(1, keepdim=True)
    d = h - high  # <= 0; z = d / t is H/t - max_k H/t (the softmax's shift) for every temperature
    # per temperature, with s = 1 / (K + sum_k e_k): q_c = e_c s + s and q_c - 1/K = e_c s - mean_k(e_k) s, so the
    # full-size work is e_c s, summed over the temperatures; s and mean_k(e_k) s are one value per pixel
    acc = share = mean_share = None
    for t in cfg.temperatures:
        e = _expm1((d / t if cfg.convention == "divide" else d * t).clamp_(min=EXPM1_FLOOR))
        total = e.sum(1, keepdim=True)
        s = (total + k).reciprocal_()
        es, ms = e.mul_(s), total.mul_(s).div_(k)
        acc, share, mean_share = ((es, s, ms) if acc is None or share is None or mean_share is None
                                  else (acc.add_(es), share.add_(s), mean_share.add_(ms)))
    assert acc is not None and share is not None and mean_share is not None  # there is at least one temperature
    q = (acc + share).div_(n)
    excess = acc.sub_(mean_share).div_(n)
    tie = (high - low) <= tie_eps * torch.maximum(high.abs(), low.abs())
    return q, excess.mul_(~tie)  # ties' excess to 0 (a product: masked_fill is 4x slower on CPUs)


def _expm1(z: Tensor) -> Tensor:
    """``exp(z) - 1`` in ``z``'s dtype, within an ulp of the exact value.

    ``torch.expm1`` is vectorised on CPUs for float64 only (float32 calls the C library per value, 8x slower than
    converting, computing in float64 and rounding back); other devices compute it in the dtype itself.
    """
    if z.dtype == torch.float64 or z.device.type != "cpu":
        return torch.expm1(z)
    return torch.expm1(z.double()).to(z.dtype)


def _keep_at_least(keep: Tensor, excess: Tensor, positive: Tensor, share: float) -> Tensor:
    """``keep``, plus the ``share`` best positive pixels of every map that keeps fewer positive ones.

    The surviving mass must be evidence (``H > 0``), not zeros: pixels rank by ``q`` among the positive ones.
    """
    kept, pos = keep.flatten(2), positive.flatten(2)
    n = max(1, min(kept.shape[-1], math.ceil(share * kept.shape[-1])))
    short = (kept & pos).sum(-1) < n  # [B, K]: the maps that keep too few positive pixels
    if not bool(short.any()):
        return keep
    flat = torch.where(pos[short], excess.flatten(2)[short], -math.inf)
    kth = flat.topk(n, dim=-1).values[:, -1:]
    out = kept.clone()
    out[short] = kept[short] | (pos[short] & (flat >= kth))
    return out.view_as(keep)


def kept_nothing(keep: Tensor) -> Tensor:
    """Whether VAR kept no pixel of each map: the one meaning of a map *zeroed by VAR*.

    The figure marks such a map, the JSON record and the explorer list it, ``attrdist explain`` warns about it.

    Args:
        keep: Kept-pixel masks ``[B, K, ...]`` (:attr:`VAROutput.keep`, :attr:`VARResult.keep`).

    Returns:
        ``[B, K]`` booleans.

    Example:
        >>> kept_nothing(refine(torch.tensor([[[[2.0, 0.0]], [[0.0, 0.0]]]]), "paper").keep).tolist()
        [[False, True]]
    """
    return ~keep.flatten(2).any(2)


def kept_share(keep: Tensor) -> Tensor:
    """The share of its pixels VAR kept of each map, ``[B, K]`` floats in [0, 1]; 0 exactly where :func:`kept_nothing`.

    Example:
        >>> kept_share(torch.tensor([[[True, False], [False, False]]])).tolist()
        [[0.5, 0.0]]
    """
    return keep.flatten(2).float().mean(2)


def _smooth_maps(h: Tensor, fraction: float) -> Tensor:
    """A Gaussian blur of every map of ``[..., H, W]``: sigma a fraction of the larger side, radius 3 sigma."""
    sigma = fraction * max(h.shape[-2:])
    radius = min(math.ceil(3 * sigma), h.shape[-2] - 1, h.shape[-1] - 1)
    return h if radius < 1 else smooth(h, 2 * radius + 1, sigma, "gaussian", "reflect")


@dataclass(kw_only=True)
class VARResult:
    """Raw maps of a class set, refined by VAR: what :meth:`VAR.attribute` returns.

    Every map tensor is ``[B, K, H, W]``, one map per class of the set, the classes in the order of
    ``classes``; ``refined`` means the refined maps of every class, here and in every result of attrdist.

    Attributes:
        maps: Raw (vanilla) maps, channel-summed.
        refined: Refined maps.
        q: Per-pixel class distribution (float64); ``[B, K, C, H, W]`` with ``channels="each"``.
        keep: Kept pixels, shaped as ``q``.
        classes: The class set ``[B, K]`` (class ids).
        target: The explained class per sample ``[B]`` (a class id, always in ``classes``).
        logits: Model outputs ``[B, num_classes]``.
        config: The VAR parameters of ``refined``.
        method: Name of the attribution method.
        vjp: How the K class gradients were computed (``"batched"``, ``"sequential"`` or ``"none"``).
        seconds: Time of the attribution (the VAR step excluded).
        ranked: Whether the class set was chosen by rank (``tau_ranked`` applies).
        channel_maps: Raw per-channel maps ``[B, K, C, H, W]`` of input-space methods, else ``None``.
        label_set: The model's class names, one per output (from a :class:`~attrdist.models.LoadedModel` or a
            ``transformers`` model's labels), else ``None``; :attr:`class_names` reads it.
    """

    maps: Tensor
    refined: Tensor
    q: Tensor
    keep: Tensor
    classes: Tensor
    target: Tensor
    logits: Tensor
    config: VARConfig
    method: str = ""
    vjp: str = "none"
    seconds: float = 0.0
    ranked: bool = False
    channel_maps: Tensor | None = None
    label_set: Sequence[str] | None = field(default=None, repr=False)

    @property
    def class_names(self) -> list[list[str]] | None:
        """Names of the classes of the set, shaped as :attr:`classes` (``[B][K]``); ``None`` when the model has none.

        Example:
            >>> result.class_names  # doctest: +SKIP
            [['tiger cat', 'Egyptian cat', 'tabby', 'African hunting dog']]
        """
        if self.label_set is None:
            return None
        return [[self.label_set[c] for c in row] for row in self.classes.tolist()]

    @property
    def target_names(self) -> list[str] | None:
        """Name of the explained class per sample (``[B]``); ``None`` when the model has no class names."""
        return None if self.label_set is None else [self.label_set[int(c)] for c in self.target.tolist()]

    def _repr_png_(self) -> bytes:
        """Jupyter's picture of the result: raw and VAR maps of the first sample's classes (:mod:`attrdist.viz`)."""
        from .viz import result_png

        return result_png(self)

    @property
    def target_index(self) -> Tensor:
        """Column of the target in ``classes``, ``[B]``."""
        return (self.classes == self.target[:, None]).long().argmax(1)

    @property
    def raw_target(self) -> Tensor:
        """The raw map of the target class ``[B, H, W]``."""
        return self.maps[torch.arange(self.maps.shape[0], device=self.maps.device), self.target_index]

    @property
    def refined_target(self) -> Tensor:
        """The refined map of the target class ``[B, H, W]``."""
        return self.refined[torch.arange(self.refined.shape[0], device=self.refined.device), self.target_index]

    @property
    def probabilities(self) -> Tensor:
        """Softmax probability of each class of the set ``[B, K]``."""
        return self.logits.float().softmax(1).gather(1, self.classes)

    def refine(self, preset: str | VARConfig | None = None, *, warn_identical: bool = False,
               **overrides: object) -> VARResult:
        """The same raw maps refined with other VAR parameters (no model call).

        Args:
            preset: A preset name or :class:`VARConfig`; default: this result's configuration.
            warn_identical: Warn when the K maps of an image are identical (see :func:`refine`).
            **overrides: Fields of :class:`VARConfig` to override.

        Returns:
            A new result sharing the raw maps.

        Example:
            >>> result.refine("paper", tau=0.05).refined_target  # doctest: +SKIP
        """
        cfg = get_preset(self.config if preset is None else preset, **overrides)
        channel_maps = self.channel_maps if cfg.channels == "each" else None
        out = refine(self.maps if channel_maps is None else channel_maps, cfg, ranked=self.ranked,
                     warn_identical=warn_identical)
        refined = out.refined if channel_maps is None else out.refined.sum(2)
        return replace(self, refined=refined, q=out.q, keep=out.keep, config=cfg)

    def variants(self, configs: Mapping[str, VARConfig], *, target: bool = False) -> dict[str, Tensor]:
        """Vanilla and each configuration's refined maps, all from these raw maps (no model call).

        Args:
            configs: Variant name -> VAR configuration (``"vanilla"`` is reserved for the raw maps).
            target: Return the target's map ``[B, H, W]`` instead of every class's ``[B, K, H, W]``.

        Returns:
            ``{"vanilla": raw maps, name: refined maps, ...}`` in the order of ``configs``.

        Example:
            >>> result.variants({"var": get_preset(), "paper": get_preset("paper")}, target=True)  # doctest: +SKIP
        """
        out = {"vanilla": self.maps}
        for name, cfg in configs.items():
            if name == "vanilla":
                raise ValueError("'vanilla' names the raw maps; choose another variant name")
            out[name] = self.refined if cfg == self.config else self.refine(cfg).refined
        if target:
            rows = torch.arange(self.maps.shape[0], device=self.maps.device)
            return {name: maps[rows, self.target_index] for name, maps in out.items()}
        return out

    @property
    def kept_nothing(self) -> Tensor:
        """Whether VAR kept no pixel of each map, ``[B, K]`` (:func:`kept_nothing`: what *zeroed* means)."""
        return kept_nothing(self.keep)

    @property
    def kept_share(self) -> Tensor:
        """The share of its pixels VAR kept of each map, ``[B, K]`` (:func:`kept_share`)."""
        return kept_share(self.keep)

    @property
    def zeroed(self) -> Tensor:
        """Whether VAR kept no pixel of the target's map, per sample ``[B]`` (:attr:`kept_nothing` of the target)."""
        return self.kept_nothing.gather(1, self.target_index[:, None]).squeeze(1)

    def to(self, device: str | torch.device) -> VARResult:
        """A copy with every tensor on ``device`` (e.g. ``"cpu"`` to keep results off the GPU)."""
        moved = {f.name: getattr(self, f.name).to(device) for f in fields(self)
                 if isinstance(getattr(self, f.name), torch.Tensor)}
        return replace(self, **moved)

    def __getitem__(self, index: int | slice) -> VARResult:
        """The results of some samples of the batch (``result[0]`` keeps a batch dimension of 1)."""
        idx = slice(index, index + 1) if isinstance(index, int) else index
        part = {f.name: getattr(self, f.name)[idx] for f in fields(self)
                if isinstance(getattr(self, f.name), torch.Tensor)}
        return replace(self, **part)


class VAR:
    """Wrap any attribution method with the VAR refinement (like Captum's ``NoiseTunnel(method)``).

    Args:
        method: An :class:`~attrdist.methods.Attributor` (a registered method, or an adapter around
            Captum, pytorch-grad-cam or any callable).
        classes: Class-set spec (``"top3+worst"``, ``"best-vs-worst"``, ``"281,285,287"``), a
            :class:`~attrdist.classes.ClassSet`, a list of classes or a ``[B, K]`` tensor.
        preset: A key of :data:`PRESETS` (default :data:`DEFAULT_PRESET`) or a :class:`VARConfig`.
        ranked: Whether the class set was chosen by rank (selects ``tau_ranked``); default: true for ranked
            class-set specs (``topN``, ``topN+worst``, ``best-vs-worst``), false for lists and tensors.
        **overrides: Fields of :class:`VARConfig` to override (``temperatures``, ``tau``, ...).

    Example:
        >>> explainer = VAR(get_method("gradcam", model), classes="top3+worst")  # doctest: +SKIP
        >>> result = explainer.attribute(x)                                       # doctest: +SKIP
        >>> result.refined_target.shape                                          # doctest: +SKIP
        torch.Size([1, 224, 224])
    """

    def __init__(
        self, method: Attributor, *, classes: ClassesLike = DEFAULT_CLASSES, preset: str | VARConfig | None = None,
        ranked: bool | None = None, **overrides: object,
    ) -> None:
        from .methods.base import Attributor

        if not isinstance(method, Attributor):
            raise TypeError(
                f"VAR needs an attrdist method (get_method(...) or an adapter), got {type(method).__name__}; "
                "wrap a callable with attrdist.methods.CallableAdapter(model, fn)"
            )
        self.method = method
        self.classes = classes if isinstance(classes, torch.Tensor) else parse_class_set(classes)
        self.config = get_preset(preset, **overrides)
        self.ranked = is_ranked(self.classes) if ranked is None else ranked
        if method.class_agnostic:
            warnings.warn(
                f"method {method.name or type(method).__name__} is class-agnostic: its maps are the same for "
                "every class, so VAR keeps no pixel",
                ClassAgnosticWarning,
                stacklevel=2,
            )

    def __repr__(self) -> str:
        spec = self.classes.spec if isinstance(self.classes, ClassSet) else "tensor"
        return f"VAR({self.method!r}, classes={spec!r}, config={self.config})"

    def attribute(self, inputs: Tensor, target: Tensor | int | None = None) -> VARResult:
        """Explain ``inputs`` for the target class against the class set.

        Args:
            inputs: Input batch ``[B, C, H, W]``.
            target: Target class per sample; default: the predicted class (for a predefined set, the
                most probable class of the set).

        Returns:
            The :class:`VARResult` (raw maps, refined maps, distribution, class set, target).
        """
        start = time.perf_counter()
        att = self.method.attribute(inputs, target=target, classes=self.classes)
        seconds = time.perf_counter() - start
        empty = torch.empty(0)
        raw = VARResult(maps=att.maps, refined=empty, q=empty, keep=empty, classes=att.classes, target=att.target,
                        logits=att.logits, config=self.config, method=att.method, vjp=att.vjp, seconds=seconds,
                        ranked=self.ranked, channel_maps=att.channel_maps,
                        label_set=getattr(self.method, "class_names", None))
        return raw.refine(self.config, warn_identical=not self.method.class_agnostic)

    __call__ = attribute
