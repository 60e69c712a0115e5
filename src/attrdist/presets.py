"""VAR's configuration: its parameters (:class:`VARConfig`), the named presets, their defaults and bounds.

A light module (no torch): the command line builds its options from :class:`VARConfig`'s fields, and the explorer
and the benchmarks read the presets, without importing the operator (:mod:`attrdist.var`, which re-exports every
name here).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any, Literal, cast, get_args

from .options import opt

__all__ = [
    "DEFAULT_CLASSES",
    "DEFAULT_PRESET",
    "NORMALIZATION_NAMES",
    "PRESETS",
    "TAU_BOUNDS",
    "Channels",
    "Convention",
    "Gate",
    "Magnitude",
    "Normalization",
    "OpenInterval",
    "VARConfig",
    "get_preset",
    "preset_margins",
    "variant_config",
]

Magnitude = Literal["signed", "abs", "positive"]
Convention = Literal["divide", "multiply"]
Channels = Literal["sum", "each"]
Gate = Literal["margin", "none"]
#: Joint normalisations of the K maps of an image (:func:`attrdist.var.joint_scale` implements each).
Normalization = Literal["none", "max", "quantile"]
#: Their names, in order: the choices of ``--normalize`` and of a benchmark's variants.
NORMALIZATION_NAMES: tuple[str, ...] = get_args(Normalization)

#: The class set used when none is named: the 3 most probable classes and the least probable one.
DEFAULT_CLASSES = "top3+worst"


@dataclass(frozen=True)
class OpenInterval:
    """The open interval ``(low, high)`` of a parameter's allowed values.

    Example:
        >>> 0.5 in TAU_BOUNDS, 1.0 in TAU_BOUNDS, str(TAU_BOUNDS)
        (True, False, '(-1, 1)')
    """

    low: float
    high: float

    def __contains__(self, value: object) -> bool:
        return isinstance(value, int | float) and self.low < value < self.high

    def __str__(self) -> str:
        return f"({self.low:g}, {self.high:g})"

    def control(self, step: float = 0.01) -> dict[str, float]:
        """The closed range of a control that moves in ``step``: what a page's slider offers, as JSON.

        Example:
            >>> TAU_BOUNDS.control()
            {'min': -0.99, 'max': 0.99, 'step': 0.01}
        """
        return {"min": round(self.low + step, 12), "max": round(self.high - step, 12), "step": step}


#: Where the margins ``tau`` and ``tau_ranked`` lie: ``q_c - 1/K`` lies in ``(-1/K, 1 - 1/K)``, so a margin outside
#: ``(-1, 1)`` keeps every pixel or none, for any K. :class:`VARConfig` checks it; the explorer's server reads it
#: (and sends :meth:`OpenInterval.control` to its page for the margin's slider).
TAU_BOUNDS = OpenInterval(-1.0, 1.0)


@dataclass(frozen=True, kw_only=True)
class VARConfig:
    """Parameters of the VAR operator (saved with every result).

    Attributes:
        temperatures: Softmax temperatures whose distributions are averaged.
        tau: Margin: a pixel survives for class ``c`` when ``q_c - 1/K > tau``.
        tau_ranked: The margin for class sets chosen by rank (``topN``, ``topN+worst``, ``best-vs-worst``);
            ``None``: ``tau``. The authors' code uses 0.1 for predefined sets and 0.01 for ranked ones.
        magnitude: ``"signed"`` uses ``H`` as it is (paper); ``"abs"`` uses ``|H|`` (authors' code);
            ``"positive"`` uses the positive part ``max(H, 0)`` (negative evidence counts as none).
        convention: ``"divide"`` computes ``softmax(H / t)`` (paper); ``"multiply"`` computes
            ``softmax(H * t)`` (authors' code).
        normalize: Joint scale applied to the K maps of one image before the softmax: ``"none"``
            (the paper as written), ``"max"`` (joint max-abs) or ``"quantile"`` (joint ``quantile`` of
            ``|H|``). The K maps of one image always share one scale, so classes keep competing.
        quantile: Quantile used by ``normalize="quantile"``.
        channels: ``"sum"``: one distribution over the channel-summed maps (paper); ``"each"``: one per
            colour channel of methods with input-space maps, before the channel sum (authors' code, which
            stacks Captum's ``[K, 3, H, W]`` attributions); layer and attention methods have one channel.
        smooth: Standard deviation of a Gaussian applied to each of the K maps (reflected borders) before the
            distribution is computed, as a fraction of the maps' larger side (0.02: 4.5 pixels on a 224-pixel
            map, 0.14 on a 7x7 Grad-CAM map); the raw maps are refined. 0: none (paper). Per-pixel
            distributions of noisy gradient maps are noisy themselves; the distribution of smoothed maps follows
            which class dominates a neighbourhood.
        tau_quantile: When set, the margin of each map is this quantile of its ``q_c - 1/K`` over the pixels,
            instead of the constant ``tau`` (a fixed share of every map survives, whatever the method's scale).
        min_keep: The least share of its pixels every map keeps with evidence for its class: where fewer
            pixels with ``H_c > 0`` pass the margin, the map also keeps, of its pixels with ``H_c > 0``, this
            share with the highest ``q_c`` (all of them if fewer). 0: none, the paper; a map whose class never
            dominates is then zeroed. A map with no positive pixel has nothing to keep.
        gate: ``"margin"``: keep only pixels above the margin (paper); ``"none"``: no indicator, ``H * q**power``
            everywhere (a soft gate: no map is ever zeroed).
        power: Exponent of ``q`` in the refined map ``H * q**power`` (1: paper).
    """

    temperatures: tuple[float, ...] = field(
        default=(1.0, 5.0, 100.0), metadata=opt("softmax temperatures whose distributions are averaged"))
    tau: float = field(default=0.0, metadata=opt("margin: keep pixels where q_c - 1/K > tau"))
    tau_ranked: float | None = field(
        default=None, metadata=opt("margin for ranked class sets (topN, best-vs-worst); default: tau"))
    magnitude: Magnitude = field(default="signed", metadata=opt("H as it is, |H|, or its positive part",
                                                                get_args(Magnitude)))
    convention: Convention = field(
        default="divide", metadata=opt("softmax(H / t) (paper) or softmax(H * t) (authors' code)",
                                         get_args(Convention)))
    normalize: Normalization = field(
        default="none", metadata=opt("joint scale of the K maps of an image before the softmax",
                                       get_args(Normalization)))
    quantile: float = field(default=0.99, metadata=opt("quantile of |H| used by --normalize quantile"))
    channels: Channels = field(
        default="sum", metadata=opt("one distribution over channel-summed maps, or one per colour channel",
                                      get_args(Channels)))
    smooth: float = field(default=0.0, metadata=opt(
        "sigma of a Gaussian applied to the K maps before the distribution, as a fraction of the map side (0: none)"))
    tau_quantile: float | None = field(default=None, metadata=opt(
        "margin of each map: this quantile of its q_c - 1/K over the pixels (instead of tau)"))
    min_keep: float = field(default=0.0, metadata=opt(
        "least share of pixels every map keeps (its highest q) where fewer pass the margin (0: none)"))
    gate: Gate = field(default="margin", metadata=opt(
        "keep pixels above the margin (paper), or none: H * q**power everywhere", get_args(Gate)))
    power: float = field(default=1.0, metadata=opt("exponent of q in H * q**power (1: paper)"))

    def __post_init__(self) -> None:
        temps = tuple(float(t) for t in self.temperatures)
        object.__setattr__(self, "temperatures", temps)
        if not temps or any(not t > 0 for t in temps):
            raise ValueError(f"temperatures must be a non-empty list of positive numbers, got {temps}")
        if not 0 <= self.smooth <= 1:
            raise ValueError(f"smooth must be a sigma in [0, 1] (a fraction of the map side), got {self.smooth}")
        if not 0 < self.power < float("inf"):
            raise ValueError(f"power must be a positive number, got {self.power}")
        if not 0 <= self.min_keep <= 1:
            raise ValueError(f"min_keep must lie in [0, 1], got {self.min_keep}")
        if self.tau_quantile is not None and not 0 <= self.tau_quantile < 1:
            raise ValueError(f"tau_quantile must lie in [0, 1), got {self.tau_quantile}")
        for name, allowed in self.choices().items():
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name} must be one of {', '.join(allowed)}; got {getattr(self, name)!r}")
        if not 0.0 < self.quantile <= 1.0:
            raise ValueError(f"quantile must lie in (0, 1], got {self.quantile}")
        for name in ("tau", "tau_ranked"):
            value = getattr(self, name)
            if value is not None and value not in TAU_BOUNDS:
                raise ValueError(f"{name} must lie in {TAU_BOUNDS}, got {value}")

    @classmethod
    def choices(cls) -> dict[str, tuple[str, ...]]:
        """The allowed values of every field that has a fixed set (written once, in the fields' metadata).

        The command line, the web explorer's server and its page read them from here.

        Example:
            >>> VARConfig.choices()["magnitude"]
            ('signed', 'abs', 'positive')
        """
        return {f.name: tuple(f.metadata["choices"]) for f in fields(cls) if "choices" in f.metadata}

    def margin(self, ranked: bool) -> float:
        """The margin tau for a ranked (``True``) or predefined class set: the one rule of which margin applies.

        Example:
            >>> PRESETS["authors-code"].margin(ranked=True), PRESETS["authors-code"].margin(ranked=False)
            (0.01, 0.1)
        """
        return self.tau_ranked if ranked and self.tau_ranked is not None else self.tau

    def to_dict(self) -> dict[str, object]:
        """Return the configuration as plain JSON-serialisable values."""
        d = asdict(self)
        d["temperatures"] = list(self.temperatures)
        return d


#: Named presets. ``smoothed-positive`` (the default) is the second variant study's winner under its pre-registered
#: rule: the distribution of the positive part of the jointly normalised maps, Gaussian-smoothed (sigma 2% of the
#: side), at temperatures 0.1, 0.3, 1, every map keeping at least 5% of its pixels with positive evidence
#: (docs/presets.md, "The default VAR"). ``paper`` follows the paper's text; ``authors-code`` follows nilspwalter/var;
#: ``normalized`` is the paper's formula on the K maps divided by their joint 99th percentile of ``|H|``
#: (the default before the second study); ``smoothed`` is ``smoothed-positive`` on ``|H|`` (the first study's
#: best localiser).
PRESETS: dict[str, VARConfig] = {
    "smoothed-positive": VARConfig(normalize="quantile", quantile=0.99, magnitude="positive", smooth=0.02,
                                   temperatures=(0.1, 0.3, 1.0), min_keep=0.05),
    "normalized": VARConfig(normalize="quantile", quantile=0.99),
    "paper": VARConfig(),
    "authors-code": VARConfig(temperatures=(10.0,), tau=0.1, tau_ranked=0.01, magnitude="abs",
                              convention="multiply", channels="each"),
    "smoothed": VARConfig(normalize="quantile", quantile=0.99, magnitude="abs", smooth=0.02,
                          temperatures=(0.1, 0.3, 1.0), min_keep=0.05),
}

#: The preset used when none is named: the second variant study's winner (docs/presets.md, "The default VAR").
DEFAULT_PRESET = "smoothed-positive"


def get_preset(name: str | VARConfig | None = None, **overrides: object) -> VARConfig:
    """Return a named preset (or a given config) with some fields replaced.

    Args:
        name: A key of :data:`PRESETS`, a :class:`VARConfig`, or ``None`` for :data:`DEFAULT_PRESET`.
        **overrides: Fields to replace; ``None`` values are ignored.

    Returns:
        The configuration.

    Raises:
        ValueError: If the preset name or a field is unknown.

    Example:
        >>> get_preset("paper", tau=0.05).tau
        0.05
    """
    if isinstance(name, VARConfig):
        base = name
    else:
        try:
            base = PRESETS[name or DEFAULT_PRESET]
        except KeyError:
            raise ValueError(f"unknown VAR preset {name!r}; choose one of {', '.join(PRESETS)}") from None
    known = {f.name for f in fields(VARConfig)}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise ValueError(f"unknown VAR parameter(s) {unknown}; the parameters are {', '.join(sorted(known))}")
    changes = {k: v for k, v in overrides.items() if v is not None}
    if "temperatures" in changes:
        changes["temperatures"] = tuple(cast(Iterable[float], changes["temperatures"]))
    return replace(base, **cast("dict[str, Any]", changes)) if changes else base


def preset_margins(ranked: bool) -> dict[str, float]:
    """Per preset, the margin that applies to a ranked (``True``) or predefined class set (:meth:`VARConfig.margin`).

    What the explorer's page shows on its margin control for each preset (the server sends it).

    Example:
        >>> preset_margins(ranked=True)["authors-code"], preset_margins(ranked=False)["authors-code"]
        (0.01, 0.1)
    """
    return {name: cfg.margin(ranked) for name, cfg in PRESETS.items()}


def variant_config(spec: Mapping[str, object]) -> VARConfig:
    """A VAR configuration from a variant spec ``{"preset": name, **overrides}`` (the preset may be left out)."""
    preset = cast("str | VARConfig | None", spec.get("preset"))
    return get_preset(preset, **{k: v for k, v in spec.items() if k != "preset"})
