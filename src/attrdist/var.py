"""The VAR operator: refine attribution maps by their distribution over a set of classes.

Walter et al. compute, for each class ``k`` of a class set of size ``K``, the raw map ``H_k`` of one
attribution method, turn the maps into a distribution over the classes at every pixel and keep, for
each class, only the pixels where that class is more likely than uniform::

    q_k   = mean_{t in T} softmax_k(H_k / t)          T = (1, 5, 100)
    H'_c  = H_c * q_c * 1[q_c - 1/K > tau]            tau = 0

The authors' public code differs from the paper text (``|H|``, one temperature used as a multiplier,
``tau = 0.1``); both are presets here, and every parameter can be set on its own.

The distribution is computed in float64 so that maps of tiny magnitude (LRP relevances of ~1e-8) do
not round to a uniform distribution, and the softmax subtracts the per-pixel maximum so that maps of
magnitude 1e4 do not overflow.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Literal

import torch
from torch import Tensor

__all__ = [
    "DEFAULT_PRESET",
    "PRESETS",
    "NORMALIZATIONS",
    "VAR",
    "VARResult",
    "VARConfig",
    "VAROutput",
    "ClassAgnosticWarning",
    "get_preset",
    "joint_scale",
    "var",
]

Magnitude = Literal["signed", "abs"]
Convention = Literal["divide", "multiply"]

#: Absolute tolerance of the strict ``q_c - 1/K > tau`` test: a distribution that is uniform up to
#: float64 rounding (identical maps, all-zero maps) must count as uniform.
UNIFORM_ATOL = 1e-12


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
    return NORMALIZATIONS[normalize](maps.abs().flatten(1), quantile)


def _scale_none(flat_abs: Tensor, quantile: float) -> Tensor:
    return torch.ones(flat_abs.shape[0], dtype=flat_abs.dtype, device=flat_abs.device)


def _scale_max(flat_abs: Tensor, quantile: float) -> Tensor:
    s = flat_abs.amax(dim=1)
    return torch.where(s > 0, s, torch.ones_like(s))


def _scale_quantile(flat_abs: Tensor, quantile: float) -> Tensor:
    # torch.quantile is limited to 16M elements; kthvalue has no limit and gives the same order statistic
    n = flat_abs.shape[1]
    k = min(n, max(1, int(round(quantile * (n - 1))) + 1))
    s = flat_abs.kthvalue(k, dim=1).values
    fallback = _scale_max(flat_abs, quantile)
    return torch.where(s > 0, s, fallback)


#: Joint normalisations, the single list used by the operator, the CLI and the benchmarks.
NORMALIZATIONS = {"none": _scale_none, "max": _scale_max, "quantile": _scale_quantile}


@dataclass(frozen=True)
class VARConfig:
    """Parameters of the VAR operator (saved with every result).

    Attributes:
        temperatures: Softmax temperatures whose distributions are averaged.
        tau: Margin: a pixel survives for class ``c`` when ``q_c - 1/K > tau``.
        magnitude: ``"signed"`` uses ``H`` as it is (paper); ``"abs"`` uses ``|H|`` (authors' code).
        convention: ``"divide"`` computes ``softmax(H / t)`` (paper); ``"multiply"`` computes
            ``softmax(H * t)`` (authors' code).
        normalize: Joint scale applied to the K maps of one image before the softmax: ``"none"``
            (the paper as written), ``"max"`` (joint max-abs) or ``"quantile"`` (joint ``quantile`` of
            ``|H|``). The K maps of one image always share one scale, so classes keep competing.
        quantile: Quantile used by ``normalize="quantile"``.
    """

    temperatures: tuple[float, ...] = (1.0, 5.0, 100.0)
    tau: float = 0.0
    magnitude: Magnitude = "signed"
    convention: Convention = "divide"
    normalize: str = "none"
    quantile: float = 0.99

    def __post_init__(self) -> None:
        temps = tuple(float(t) for t in self.temperatures)
        object.__setattr__(self, "temperatures", temps)
        if not temps or any(not t > 0 for t in temps):
            raise ValueError(f"temperatures must be a non-empty list of positive numbers, got {temps}")
        if self.magnitude not in ("signed", "abs"):
            raise ValueError(f"magnitude must be 'signed' or 'abs', got {self.magnitude!r}")
        if self.convention not in ("divide", "multiply"):
            raise ValueError(f"convention must be 'divide' or 'multiply', got {self.convention!r}")
        if self.normalize not in NORMALIZATIONS:
            raise ValueError(f"normalize must be one of {sorted(NORMALIZATIONS)}, got {self.normalize!r}")
        if not 0.0 < self.quantile <= 1.0:
            raise ValueError(f"quantile must lie in (0, 1], got {self.quantile}")
        if not -1.0 < self.tau < 1.0:
            raise ValueError(f"tau must lie in (-1, 1), got {self.tau}")

    def to_dict(self) -> dict:
        """Return the configuration as plain JSON-serialisable values."""
        d = asdict(self)
        d["temperatures"] = list(self.temperatures)
        return d


#: Named presets. ``paper`` follows the paper's text; ``authors-code`` follows nilspwalter/var;
#: ``normalized`` is the paper's formula on the K maps divided by their joint 99th percentile of ``|H|``,
#: which makes VAR independent of a method's magnitude (the default: see the README's preset table).
PRESETS: dict[str, VARConfig] = {
    "normalized": VARConfig(normalize="quantile", quantile=0.99),
    "paper": VARConfig(),
    "authors-code": VARConfig(temperatures=(10.0,), tau=0.1, magnitude="abs", convention="multiply"),
}

#: The preset used when none is named, chosen on the variant benchmark (README, "VAR presets").
DEFAULT_PRESET = "normalized"


def get_preset(name: str | VARConfig, **overrides: object) -> VARConfig:
    """Return a named preset (or a given config) with some fields replaced.

    Args:
        name: A key of :data:`PRESETS` or a :class:`VARConfig`.
        **overrides: Fields to replace; ``None`` values are ignored.

    Returns:
        The configuration.

    Raises:
        ValueError: If the preset name is unknown.
    """
    if isinstance(name, VARConfig):
        base = name
    else:
        try:
            base = PRESETS[name]
        except KeyError:
            raise ValueError(f"unknown VAR preset {name!r}; choose one of {sorted(PRESETS)}") from None
    changes = {k: v for k, v in overrides.items() if v is not None}
    if "temperatures" in changes:
        changes["temperatures"] = tuple(changes["temperatures"])  # type: ignore[arg-type]
    return replace(base, **changes) if changes else base


@dataclass
class VAROutput:
    """Result of :func:`var`.

    Attributes:
        refined: Refined maps ``H'_k`` for every class of the set, ``[B, K, ...]``, dtype of the input.
        q: Per-pixel class distribution, ``[B, K, ...]``, float64.
        keep: Boolean mask of the kept pixels, ``[B, K, ...]``.
        config: The parameters used.
    """

    refined: Tensor
    q: Tensor
    keep: Tensor
    config: VARConfig = field(default_factory=VARConfig)


def var(
    maps: Tensor,
    *,
    preset: str | VARConfig = DEFAULT_PRESET,
    temperatures: Sequence[float] | None = None,
    tau: float | None = None,
    magnitude: Magnitude | None = None,
    convention: Convention | None = None,
    normalize: str | None = None,
    warn_identical: bool = True,
) -> VAROutput:
    """Refine K attribution maps of the same images by their class distribution.

    Args:
        maps: Raw maps ``[B, K, H, W]`` (any trailing shape works), one per class of the set, never
            normalised per map.
        preset: ``"normalized"`` (default), ``"paper"``, ``"authors-code"`` or a :class:`VARConfig`.
        temperatures: Overrides the preset's temperatures.
        tau: Overrides the preset's margin.
        magnitude: Overrides the preset's magnitude (``"signed"`` or ``"abs"``).
        convention: Overrides the preset's temperature convention (``"divide"`` or ``"multiply"``).
        normalize: Overrides the preset's joint normalisation.
        warn_identical: Warn (:class:`ClassAgnosticWarning`) when the K maps of an image are identical.

    Returns:
        The refined maps for every class, the distribution ``q`` and the kept-pixel mask.

    Raises:
        ValueError: If ``maps`` has fewer than 3 dimensions, fewer than 2 classes, or NaN/inf values.

    Example:
        >>> maps = torch.randn(2, 4, 7, 7)
        >>> out = var(maps)
        >>> out.refined.shape, float(out.q.sum(1).mean())
        (torch.Size([2, 4, 7, 7]), 1.0)
    """
    cfg = get_preset(
        preset, temperatures=temperatures, tau=tau, magnitude=magnitude, convention=convention,
        normalize=normalize,
    )
    if not isinstance(maps, Tensor):
        raise TypeError(f"maps must be a torch.Tensor, got {type(maps).__name__}")
    if maps.dim() < 3:
        raise ValueError(f"maps must have shape [B, K, H, W] (at least 3 dims), got {tuple(maps.shape)}")
    k = maps.shape[1]
    if k < 2:
        raise ValueError(
            f"VAR needs at least 2 classes to form a distribution, got K={k} (maps shape {tuple(maps.shape)})"
        )
    if not torch.isfinite(maps).all():
        bad = (~torch.isfinite(maps)).flatten(2).any(-1).nonzero().tolist()
        raise ValueError(f"maps contain NaN or inf values at (sample, class) {bad[:5]}")
    if warn_identical:
        same = (maps == maps[:, :1]).flatten(1).all(dim=1)
        if same.any():
            warnings.warn(
                f"the {k} maps of sample(s) {same.nonzero().flatten().tolist()} are identical across "
                "classes (a class-agnostic method?): their class distribution is uniform and VAR keeps "
                "no pixel",
                ClassAgnosticWarning,
                stacklevel=2,
            )

    h = maps.detach().to(torch.float64)
    h = h.abs() if cfg.magnitude == "abs" else h
    scale = joint_scale(h, cfg.normalize, cfg.quantile).view(-1, *([1] * (h.dim() - 1)))
    h = h / scale
    q = torch.zeros_like(h)
    for t in cfg.temperatures:
        q += torch.softmax(h / t if cfg.convention == "divide" else h * t, dim=1)
    q /= len(cfg.temperatures)
    keep = (q - 1.0 / k) > cfg.tau + UNIFORM_ATOL
    refined = maps * (q * keep).to(maps.dtype)
    return VAROutput(refined=refined, q=q, keep=keep, config=cfg)


@dataclass
class VARResult:
    """What :class:`VAR` returns for a batch.

    Attributes:
        refined: Refined map of the target class ``[B, H, W]``.
        target: Target class per sample ``[B]``.
        target_index: Column of the target in the class set ``[B]``.
        classes: The class set ``[B, K]``.
        maps: Raw maps of every class ``[B, K, H, W]``.
        q: Per-pixel class distribution ``[B, K, H, W]`` (float64).
        refined_all: Refined maps of every class ``[B, K, H, W]``.
        logits: Model outputs ``[B, num_classes]``.
        config: The VAR parameters used.
    """

    refined: Tensor
    target: Tensor
    target_index: Tensor
    classes: Tensor
    maps: Tensor
    q: Tensor
    refined_all: Tensor
    logits: Tensor
    config: VARConfig


class VAR:
    """Wrap any attribution method with the VAR refinement (like Captum's ``NoiseTunnel(method)``).

    Args:
        method: An :class:`~attrdist.methods.Attributor` (a registered method, or an adapter around
            Captum, pytorch-grad-cam or any callable).
        classes: Class-set spec (``"top3+worst"``, ``"best-vs-worst"``, ``"281,285,287"``), a
            :class:`~attrdist.classes.ClassSet` or a list of classes.
        preset: ``"normalized"`` (default), ``"paper"``, ``"authors-code"`` or a :class:`VARConfig`.
        **overrides: Fields of :class:`VARConfig` to override (``temperatures``, ``tau``, ...).

    Example:
        >>> explainer = VAR(get_method("gradcam", model), classes="top3+worst")  # doctest: +SKIP
        >>> result = explainer(x)                                                 # doctest: +SKIP
        >>> result.refined.shape                                                  # doctest: +SKIP
        torch.Size([1, 224, 224])
    """

    def __init__(
        self, method: object, classes: object = "top3+worst", preset: str | VARConfig = DEFAULT_PRESET,
        **overrides: object,
    ) -> None:
        from .classes import parse_class_set
        from .methods.base import Attributor

        if not isinstance(method, Attributor):
            raise TypeError(
                f"VAR needs an attrdist method (get_method(...) or an adapter), got {type(method).__name__}; "
                "wrap a callable with attrdist.methods.CallableAdapter(model, fn)"
            )
        self.method = method
        self.classes = classes if isinstance(classes, Tensor) else parse_class_set(classes)  # type: ignore[arg-type]
        self.config = get_preset(preset, **overrides)
        if method.class_agnostic:
            warnings.warn(
                f"method {method.name or type(method).__name__} is class-agnostic: its maps are the same for "
                "every class, so VAR keeps no pixel",
                ClassAgnosticWarning,
                stacklevel=2,
            )

    def __call__(self, x: Tensor, target: Tensor | int | None = None) -> VARResult:
        """Explain ``x`` for the target class with the class set.

        Args:
            x: Input batch ``[B, C, H, W]``.
            target: Target class per sample; default: the predicted class (for a predefined set, the
                most probable class of the set).

        Returns:
            The :class:`VARResult`.
        """
        from .classes import ClassSet, most_probable

        fixed = not isinstance(self.classes, ClassSet) or bool(self.classes.fixed)
        att = self.method.explain(x, self.classes, None if fixed else target)
        cls = att.classes
        if target is None:
            tgt = most_probable(cls, att.logits) if fixed else cls[:, 0]
        else:
            tgt = torch.as_tensor(target, dtype=torch.long, device=cls.device).flatten().expand(cls.shape[0])
        hit = cls == tgt[:, None]
        if not hit.any(1).all():
            i = int((~hit.any(1)).nonzero()[0])
            raise ValueError(f"target class {int(tgt[i])} of sample {i} is not in its class set {cls[i].tolist()}")
        idx = hit.long().argmax(1)
        out = var(att.maps, preset=self.config)
        rows = torch.arange(cls.shape[0], device=cls.device)
        return VARResult(
            refined=out.refined[rows, idx], target=tgt, target_index=idx, classes=cls, maps=att.maps,
            q=out.q, refined_all=out.refined, logits=att.logits, config=self.config,
        )
