"""The settings of ``attrdist explain`` (:class:`ExplainConfig`) and the figure options they name.

A light module (no torch, no matplotlib): the command line builds ``attrdist explain``'s options from
:class:`ExplainConfig`'s fields without importing what explains (:mod:`attrdist.explain`, which re-exports it) or
what draws (:mod:`attrdist.viz`, which draws with :data:`SIGNS` and writes :data:`FORMATS`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .options import DEFAULT_METHODS, ModelOptions, opt
from .presets import DEFAULT_CLASSES, DEFAULT_PRESET, PRESETS

__all__ = ["FORMATS", "SIGNS", "ExplainConfig"]

#: How signed maps are drawn (see the module docstring).
SIGNS = ("auto", "positive", "absolute", "diverging")

#: Figure formats :func:`save_figure` writes (PDF and SVG are vector graphics).
FORMATS = ("png", "pdf", "svg")


@dataclass(kw_only=True)
class ExplainConfig(ModelOptions):
    """Settings of ``attrdist explain`` (each field is a command-line option; saved in the JSON record)."""

    methods: list[str] = field(default_factory=lambda: list(DEFAULT_METHODS), metadata=opt(
        "comma-separated methods (attrdist methods --model NAME lists those that apply)"))
    classes: str | None = field(default=None, metadata=opt(
        f"class set: topN, topN+worst, best-vs-worst or a list of class ids or names like 281,285,287 or "
        f"'tabby,tiger cat' (default {DEFAULT_CLASSES}; for the sample grid: the classes of its four photos)"))
    target: str | None = field(default=None, metadata=opt(
        "explained class, an id or a name such as 'tiger cat' (default: the predicted class; for a list, its most "
        "probable class; attrdist classes QUERY searches the names)"))
    preset: list[str] = field(default_factory=lambda: [DEFAULT_PRESET], metadata=opt(
        "VAR preset; several, comma-separated, refine the same raw maps (one model call) into one VAR row each",
        tuple(PRESETS)))
    format: list[str] = field(default_factory=lambda: ["png"], metadata=opt(
        "figure formats, comma-separated (pdf and svg are vector graphics)", FORMATS))
    dpi: int = field(default=200, metadata=opt("resolution of PNG figures"))
    width: float | None = field(default=None, metadata=opt(
        "figure width in inches, laid out for it with every font >= 7 pt (3.3: a paper's column, 6.9: its text "
        "width; default: 2.2 inches per panel)"))
    sign: str = field(default="auto", metadata=opt(
        "how signed maps are drawn: auto, positive part, |map|, or a diverging scale", SIGNS))
    multiply_input: bool = field(default=False, metadata=opt("multiply maps by the image for illustration"))
    out: str = field(default="attrdist-out", metadata=opt("output folder"))
