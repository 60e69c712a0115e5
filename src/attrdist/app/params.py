"""The explorer's requests: query strings and bodies parsed and checked into typed requests, in one place.

Each endpoint's parameters become one frozen dataclass (:class:`ExplainRequest`, :class:`VarRequest`,
:class:`FigureRequest`); what a request got wrong is a :class:`~attrdist.app.errors.UserError` with a message for the
page. What only the model can check (the class set against its label set, a class name) is checked by the explorer.
"""

from __future__ import annotations

import math
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field

from ..classes import DEFAULT_CLASSES
from ..data import SAMPLES
from ..methods import DEFAULT_METHODS
from ..var import DEFAULT_PRESET, PRESETS, TAU_BOUNDS, OpenInterval, VARConfig
from ..viz import FORMATS, SIGNS
from .errors import UserError

__all__ = ["MAX_SPEC_CHARS", "ExplainRequest", "FigureRequest", "VarRequest"]

#: The longest class-set spec a request may send (refused, never cut: a cut spec would explain other classes).
MAX_SPEC_CHARS = 2000
#: The most temperatures a request may give.
MAX_TEMPERATURES = 16
_KEY = re.compile(r"^[0-9a-f]{24}$")

#: A query string: each parameter's last value.
Query = Mapping[str, str]


def _text(query: Query, name: str) -> str:
    return query.get(name, "").strip()


def _number(query: Query, name: str, bounds: OpenInterval) -> float | None:
    """The parameter as a number in ``bounds``; ``None`` if absent."""
    text = _text(query, name)
    if not text:
        return None
    try:
        value = float(text)
    except ValueError:
        raise UserError(f"{name} must be a number, got {text[:40]!r}") from None
    if value not in bounds:
        raise UserError(f"{name} must lie in {bounds}, got {text[:40]!r}")
    return value


def _choice(query: Query, name: str, choices: Collection[str]) -> str | None:
    """The parameter, one of ``choices``; ``None`` if absent."""
    value = _text(query, name)
    if value and value not in choices:
        raise UserError(f"unknown {name} {value[:40]!r}; choose one of {', '.join(choices)}")
    return value or None


def _target(query: Query) -> str | None:
    """The explained class as given, an id or a name (cut to 200 characters); ``None`` if absent.

    The explorer reads it with :func:`attrdist.classes.class_id` (or :meth:`Explanation.class_of` within a set).
    """
    return _text(query, "target")[:200] or None


def _temperatures(query: Query) -> tuple[float, ...] | None:
    text = _text(query, "temperatures")
    if not text:
        return None
    try:
        temperatures = tuple(float(t) for t in text.split(",") if t.strip())[:MAX_TEMPERATURES]
    except ValueError:
        raise UserError(f"temperatures must be comma-separated numbers, got {text[:40]!r}") from None
    if not all(math.isfinite(t) and t > 0 for t in temperatures):
        raise UserError("temperatures must be positive numbers")
    return temperatures


@dataclass(frozen=True, kw_only=True)
class ExplainRequest:
    """``POST /api/explain``: the raw maps of an image for a class set.

    Attributes:
        model: One of the configured models; ``None``: the first.
        methods: Method names, in order (checked against the model's architecture by the explorer).
        classes: The class-set spec as typed: ``top3+worst``, or class ids and names.
        target: The explained class, an id or a name; ``None``: the predicted class.
        sample: A sample photo's name, used when there is no upload.
        image: The uploaded image file, undecoded (decoded only once the job is admitted).
    """

    model: str | None = None
    methods: tuple[str, ...] = DEFAULT_METHODS
    classes: str = DEFAULT_CLASSES
    target: str | None = None
    sample: str | None = None
    image: bytes | None = None

    @classmethod
    def parse(cls, query: Query, body: bytes | None = None) -> ExplainRequest:
        """The request of a query string and an upload (empty: none).

        Raises:
            UserError: On a class set longer than :data:`MAX_SPEC_CHARS`, an unknown sample, or neither an upload
                nor a sample.

        Example:
            >>> ExplainRequest.parse({"sample": "chelsea", "methods": "gradcam", "target": "tabby"}).target
            'tabby'
        """
        classes = query.get("classes") or DEFAULT_CLASSES
        if len(classes) > MAX_SPEC_CHARS:
            raise UserError(f"the class set is {len(classes)} characters long; at most {MAX_SPEC_CHARS}")
        sample = query.get("sample") or None
        if not body:
            if not sample:
                raise UserError("upload an image or choose a sample photo")
            if sample not in SAMPLES:
                raise UserError(f"no sample {sample[:40]!r}; choose one of {', '.join(SAMPLES)}")
        methods = query["methods"].split(",") if "methods" in query else DEFAULT_METHODS
        return cls(model=query.get("model") or None, methods=tuple(m for m in methods if m), classes=classes,
                   target=_target(query), sample=sample, image=body or None)


@dataclass(frozen=True, kw_only=True)
class VarRequest:
    """``GET /api/var`` (and the downloads): VAR re-applied to a cached explanation, and how to draw it.

    Attributes:
        key: The key ``/api/explain`` returned.
        preset: A VAR preset's name.
        temperatures: Temperatures overriding the preset's; ``None``: the preset's.
        tau: The margin that applies (ranked class sets too); ``None``: the preset's.
        choices: Fields of :class:`~attrdist.var.VARConfig` with a fixed set of values (``magnitude``,
            ``normalize``, ...) that the request sets.
        target: The explained class of the set, an id or a name; ``None``: the explanation's.
        sign: How signed maps are drawn.
    """

    key: str
    preset: str = DEFAULT_PRESET
    temperatures: tuple[float, ...] | None = None
    tau: float | None = None
    choices: Mapping[str, str] = field(default_factory=dict)
    target: str | None = None
    sign: str = "auto"

    @classmethod
    def parse(cls, query: Query) -> VarRequest:
        """The request of a query string.

        Raises:
            UserError: On a malformed key, an unknown preset or choice, temperatures that are not positive numbers,
                a margin outside VAR's bounds (:data:`attrdist.var.TAU_BOUNDS`).

        Example:
            >>> VarRequest.parse({"key": "0" * 24, "tau": "0.1", "magnitude": "abs"}).choices
            {'magnitude': 'abs'}
        """
        key = query.get("key", "")
        if not _KEY.match(key):
            raise UserError("key must be the key /api/explain returned")
        given = {name: _choice(query, name, allowed) for name, allowed in VARConfig.choices().items()}
        return cls(key=key, preset=_choice(query, "preset", PRESETS) or DEFAULT_PRESET,
                   temperatures=_temperatures(query), tau=_number(query, "tau", TAU_BOUNDS),
                   choices={name: value for name, value in given.items() if value is not None},
                   target=_target(query), sign=_choice(query, "sign", SIGNS) or "auto")

    def overrides(self) -> dict[str, object]:
        """The :class:`~attrdist.var.VARConfig` fields this request sets, as :meth:`Explanation.refine` takes them.

        The page has one margin control: it sets the margin that applies, also where a preset has its own for ranked
        class sets (authors-code's ``tau_ranked`` would win over ``tau`` and the control do nothing).
        """
        return {"temperatures": self.temperatures, "tau": self.tau, "tau_ranked": self.tau, **self.choices}


@dataclass(frozen=True, kw_only=True)
class FigureRequest:
    """``GET /api/figure``: the paper-style figure of a :class:`VarRequest`.

    Attributes:
        view: The VAR parameters, target and sign.
        format: ``png``, ``pdf`` or ``svg``.
    """

    view: VarRequest
    format: str = "png"

    @classmethod
    def parse(cls, query: Query) -> FigureRequest:
        """The request of a query string.

        Raises:
            UserError: On an unknown format, or what :meth:`VarRequest.parse` refuses.
        """
        fmt = _choice(query, "format", FORMATS) or "png"
        return cls(view=VarRequest.parse(query), format=fmt)
