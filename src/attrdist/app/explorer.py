"""The explorer's logic, independent of HTTP: typed requests in, JSON-ready answers and downloads out.

Every method takes a parsed request (:mod:`attrdist.app.params`); the work that may wait or run long (an attribution,
a figure) takes the request's :class:`~attrdist.app.deadline.Deadline` and passes it on explicitly.
"""

from __future__ import annotations

import hashlib
import hmac
import io
import json
import secrets
import tempfile
import threading
from dataclasses import dataclass
from http import HTTPStatus
from pathlib import Path

import numpy as np

from ..classes import DEFAULT_CLASSES, ClassSet, class_id, class_set, parse_class_set
from ..data import SAMPLES, read_image_bytes, sample_image
from ..explain import explain_image
from ..explanation import Explanation
from ..methods import DEFAULT_METHODS, METHODS, MethodNotApplicableError, list_methods
from ..models import LoadedModel, load_model
from ..var import DEFAULT_PRESET, PRESETS, TAU_BOUNDS, VARConfig, VARResult, preset_margins
from ..viz import SIGNS, class_colors, dominance_image, explanation_figure, save_figure
from . import render
from .cache import LRUCache
from .config import AppConfig
from .deadline import Deadline
from .errors import UserError
from .jobs import Jobs
from .params import ExplainRequest, FigureRequest, VarRequest

__all__ = ["MAX_CLASSES", "MAX_FIGURE_MAPS", "Download", "Explorer"]

#: The most classes one request may explain.
MAX_CLASSES = 32
#: The most class maps (classes x methods) one figure draws (32 classes x 4 methods took two minutes).
MAX_FIGURE_MAPS = 48
#: The content type of each figure format.
CONTENT_TYPES = {"png": "image/png", "pdf": "application/pdf", "svg": "image/svg+xml"}

#: An answer as JSON takes it.
JSON = dict[str, object]


@dataclass(frozen=True)
class Download:
    """A file the page downloads.

    Attributes:
        body: The file's bytes.
        content_type: Its MIME type.
        filename: The name the server suggests.
    """

    body: bytes
    content_type: str
    filename: str


@dataclass(frozen=True)
class _Job:
    """An explain request checked against its model: what the attribution job computes, and its cache key."""

    model: str
    lm: LoadedModel
    methods: tuple[str, ...]
    classes: ClassSet
    target: int | None
    request: ExplainRequest
    key: str


@dataclass(frozen=True)
class _Unrefined:
    """What no VAR control changes, drawn once per key and sign: the image and each method's vanilla row."""

    image: str
    vanilla: dict[str, dict[str, object]]


class Explorer:
    """The explorer's logic, independent of HTTP.

    Args:
        config: The settings.
        models: Already loaded models by name (default: each of ``config.models`` is loaded on first use).
    """

    def __init__(self, config: AppConfig | None = None, models: dict[str, LoadedModel] | None = None) -> None:
        self.config = config = config or AppConfig()
        self.cache: LRUCache[Explanation] = LRUCache(config.cache_size)
        self._models: dict[str, LoadedModel] = dict(models or {})
        self._model_locks = {name: threading.Lock() for name in config.models}
        self._lock = threading.Lock()
        self.jobs = Jobs(config.workers, config.queue)
        self.model_calls = 0
        self.stopped = {"timeout": 0, "disconnected": 0}
        self._drawn: LRUCache[_Unrefined] = LRUCache(config.cache_size)
        self._refined: LRUCache[Explanation] = LRUCache(4)  # the last VAR results: a new target or sign reuses them
        self._secret = secrets.token_bytes(32)  # result keys: unguessable, and new with every start

    def model(self, name: str) -> LoadedModel:
        """One of the configured models (loaded once).

        Raises:
            UserError: If the name is not one of the configured models.
        """
        if name not in self.config.models:
            raise UserError(f"unknown model {name[:80]!r}; this explorer offers {', '.join(self.config.models)}")
        with self._lock:
            if name not in self._models:
                self._models[name] = load_model(name, trust_checkpoint=self.config.trust_checkpoint)
            return self._models[name]

    def options(self) -> JSON:
        """What the page offers: the models (and the methods that apply to each), presets, samples, the margin's range.

        ``margins`` is the margin each preset applies to the default class set (:func:`attrdist.var.preset_margins`);
        an explained class set comes with its own (:meth:`explain`).
        """
        return {
            "models": [self._model_options(name) for name in self.config.models],
            "default_methods": list(DEFAULT_METHODS),
            "default_classes": DEFAULT_CLASSES,
            "presets": {n: p.to_dict() for n, p in PRESETS.items()},
            "default_preset": DEFAULT_PRESET,
            "margins": preset_margins(parse_class_set(DEFAULT_CLASSES).ranked),
            "tau": TAU_BOUNDS.control(),
            "var_choices": {name: list(allowed) for name, allowed in VARConfig.choices().items()},
            "signs": list(SIGNS),
            "samples": SAMPLES,
            "max_upload_mb": self.config.max_upload_mb,
        }

    def _model_options(self, name: str) -> JSON:
        """A model's name, architecture and the methods that apply to it (names, display names, summaries)."""
        arch = self.model(name).architecture
        return {"name": name, "architecture": arch, "methods": [
            {"name": n, "display": METHODS.get(n).display_name, "summary": METHODS.get(n).summary}
            for n in list_methods(arch)]}

    def explain(self, request: ExplainRequest, deadline: Deadline | None = None) -> JSON:
        """Compute (or reuse) the raw maps of an image; return its class set, the key of its maps and its margins.

        ``margins`` is the margin each preset applies to this class set (:meth:`Explanation.margins`).

        Args:
            request: The parsed request.
            deadline: The request's time limit and client (checked while it waits and before every forward of the
                model); default: none.

        Raises:
            UserError: On anything the request got wrong; :class:`~attrdist.app.errors.TimeUp` when its time is up.
        """
        job = self._job(request)
        limit = deadline or Deadline()
        exp = self.jobs.run(job.key, lambda: self._compute(job, limit), lambda: self.cache.get(job.key), limit)
        return {"key": job.key, "model": job.model, "target": exp.target,
                "classes": [{"index": c, "name": n, "probability": p, "color": colour} for c, n, p, colour in
                            zip(exp.classes, exp.class_names, exp.probabilities, class_colors(exp.classes),
                                strict=True)],
                "methods": [{"name": m, "display": exp.display_names.get(m, m)} for m in exp.results],
                "margins": exp.margins()}

    def _job(self, request: ExplainRequest) -> _Job:
        """The request checked against its model, and its cache key."""
        name = request.model or self.config.models[0]
        lm = self.model(name)
        applicable = list_methods(lm.architecture)
        bad = [m[:40] for m in request.methods if m not in applicable]
        if not request.methods or bad or len(request.methods) > len(applicable):
            raise UserError(f"unknown or inapplicable method(s) {bad}; for {name} choose from {', '.join(applicable)}")
        rule = self._class_set(request.classes, lm)
        target = self._target_id(request.target, lm)
        digest = hashlib.sha256(request.image).hexdigest() if request.image else f"sample:{request.sample}"
        # keyed with this server's secret: equal requests share a result, but no one can guess another's key
        material = json.dumps([digest, name, list(request.methods), rule.spec, target]).encode()
        key = hmac.new(self._secret, material, hashlib.sha256).hexdigest()[:24]
        return _Job(model=name, lm=lm, methods=request.methods, classes=rule, target=target, request=request, key=key)

    @staticmethod
    def _class_set(spec: str, lm: LoadedModel) -> ClassSet:
        """The class set of a spec or class names (:func:`attrdist.classes.class_set`), at most :data:`MAX_CLASSES`."""
        try:
            rule = class_set(spec, lm.class_names)
        except ValueError as err:
            raise UserError(str(err)) from None
        if rule.size > MAX_CLASSES:  # one attribution per class and method, all held in the cache
            raise UserError(f"class set {spec[:80]!r} has {rule.size} classes; the explorer explains at most "
                            f"{MAX_CLASSES} at once (the command line has no limit)")
        return rule

    @staticmethod
    def _target_id(target: str | None, lm: LoadedModel) -> int | None:
        """The explained class, an id or a name of the model's label set (:func:`attrdist.classes.class_id`)."""
        if target is None:
            return None
        try:
            return class_id(target, lm.class_names)
        except ValueError as err:
            raise UserError(f"target must be an integer class id or a class name: {err}") from None

    def _compute(self, job: _Job, deadline: Deadline) -> Explanation:
        """Run the attribution of a job admitted by the queue (only now is the upload decoded), and cache it."""
        request = job.request
        image = (read_image_bytes(request.image, max_pixels=int(self.config.max_megapixels * 1e6)) if request.image
                 else sample_image(request.sample or ""))
        # one attribution at a time on a model; each of its forwards first checks the request's deadline
        with self._model_locks[job.model], deadline.watch(job.lm.model):
            try:
                exp = explain_image(job.lm, image, methods=job.methods, classes=job.classes, target=job.target,
                                    device=self.config.device)
            except UserError:
                raise  # the request's time ran out (a ValueError too, already worded for the page)
            except (ValueError, MethodNotApplicableError) as err:
                raise UserError(str(err)) from None
            self.model_calls += 1
        self.cache.put(job.key, exp)
        return exp

    def refined(self, request: VarRequest) -> Explanation:
        """The cached explanation with VAR re-applied under the request's parameters (no model call).

        Raises:
            UserError: 404 if the key's explanation is no longer cached; 400 on parameters VAR refuses or a target
                outside the class set.
        """
        exp = self.cache.get(request.key)
        if exp is None:
            raise UserError("this explanation is no longer cached: press Explain again", HTTPStatus.NOT_FOUND)
        overrides = request.overrides()
        refined_key = json.dumps([request.key, request.preset, overrides], sort_keys=True)
        out = self._refined.get(refined_key)
        if out is None:
            try:
                out = exp.refine(request.preset, **overrides)
            except ValueError as err:
                raise UserError(f"invalid VAR parameters: {err}") from None
            self._refined.put(refined_key, out)
        return self._with_target(out, request.target)

    @staticmethod
    def _with_target(exp: Explanation, target: str | None) -> Explanation:
        """``exp`` explaining ``target``, a class id or a name of its class set (:meth:`Explanation.class_of`)."""
        if target is None:
            return exp
        try:
            return exp.with_target(target)
        except ValueError as err:
            raise UserError(f"target {err}") from None

    def panels(self, request: VarRequest, deadline: Deadline | None = None) -> JSON:
        """Per method, the vanilla and VAR panels (data URLs), each row's colour scale, the class dominance.

        Drawn in the job queue like an attribution (a full queue answers 503), checking the request's deadline
        between rows, and refused if the answer would exceed ``max_answer_mb``. Each map says which share of its
        pixels VAR kept (``kept``) and whether it kept none (``zeroed``: :func:`attrdist.var.kept_nothing`, what the
        figure marks).

        Raises:
            UserError: 422 if the answer would be larger than ``max_answer_mb``; 503 if the queue is full.
        """
        limit = deadline or Deadline()
        answer = self.jobs.run(f"var:{secrets.token_hex(8)}", lambda: self._panels(request, limit), lambda: None,
                               limit)
        self._bounded(len(json.dumps(answer, default=str)), "the VAR panels")
        return answer

    def _panels(self, request: VarRequest, deadline: Deadline) -> JSON:
        """The answer of :meth:`panels`, drawn now."""
        exp = self.refined(request)
        img = np.asarray(exp.image)
        drawn = self._unrefined(request, exp, img)
        panels: JSON = {}
        for name, r in exp.results.items():
            deadline.check()
            panels[name] = {"vanilla": drawn.vanilla[name], **self._refined_row(img, r, exp, request.sign),
                            "display": exp.display_names.get(name, name)}
        return {"panels": panels, "image": drawn.image, "target": exp.target, "config": exp.config.to_dict(),
                "model_calls": self.model_calls}

    def _bounded(self, size: int, what: str) -> None:
        """Refuse an answer of ``size`` bytes beyond ``max_answer_mb`` (422, naming the cap)."""
        cap = self.config.max_answer_mb
        if size > cap * 2**20:
            raise UserError(f"{what} would be {size / 2**20:.1f} MB; this server sends at most {cap:g} MB "
                            "(explain fewer classes or methods, or start it with a larger --max-answer-mb)",
                            HTTPStatus.UNPROCESSABLE_ENTITY)

    def _unrefined(self, request: VarRequest, exp: Explanation, img: np.ndarray) -> _Unrefined:
        """The image and the vanilla rows, drawn once per key and sign (no VAR control changes them)."""
        drawn_key = f"{request.key}:{request.sign}"
        drawn = self._drawn.get(drawn_key)
        if drawn is None:
            drawn = _Unrefined(image=render.png(img / 255.0), vanilla={
                name: render.row(img, r.maps[0].numpy(), request.sign) for name, r in exp.results.items()})
            self._drawn.put(drawn_key, drawn)
        return drawn

    @staticmethod
    def _refined_row(img: np.ndarray, result: VARResult, exp: Explanation, sign: str) -> JSON:
        """One method's VAR row, its dominance map and what VAR kept of each map."""
        return {"var": render.row(img, result.refined[0].numpy(), sign),
                "dominance": render.png(dominance_image(result.q[0].numpy(), classes=exp.classes)),
                "kept": [float(k) for k in result.kept_share[0]],
                "zeroed": [bool(z) for z in result.kept_nothing[0]]}

    def figure(self, request: FigureRequest, deadline: Deadline | None = None) -> Download:
        """The paper-style figure (PNG, PDF or SVG), drawn in the job queue like an attribution.

        Raises:
            UserError: If the figure would draw more than :data:`MAX_FIGURE_MAPS` class maps, or the queue is full.
        """
        exp = self.refined(request.view)
        maps = sum(r.maps.shape[1] for r in exp.results.values())
        if maps > MAX_FIGURE_MAPS:  # drawing time and memory grow with the panels: bounded like an attribution
            raise UserError(f"the figure would draw {maps} class maps per row; at most {MAX_FIGURE_MAPS} (explain "
                            "fewer classes or methods; the maps download holds every array)")

        def draw() -> bytes:
            with tempfile.TemporaryDirectory() as tmp:
                fig = explanation_figure(exp, sign=request.view.sign)
                return save_figure(fig, Path(tmp) / f"figure.{request.format}")[0].read_bytes()

        body = self.jobs.run(f"figure:{secrets.token_hex(8)}", draw, lambda: None, deadline or Deadline())
        ext = request.format
        return Download(body=body, content_type=CONTENT_TYPES[ext], filename=f"attrdist.{ext}")

    def arrays(self, request: VarRequest, deadline: Deadline | None = None) -> Download:
        """Raw maps, q and refined maps as an npz file, made in the job queue, at most ``max_answer_mb``.

        Raises:
            UserError: 422 if the file would be larger than ``max_answer_mb``; 503 if the queue is full.
        """

        def write() -> bytes:
            buf = io.BytesIO()
            np.savez_compressed(buf, allow_pickle=False, **self.refined(request).arrays())
            return buf.getvalue()

        limit = deadline or Deadline()
        body = self.jobs.run(f"maps:{secrets.token_hex(8)}", write, lambda: None, limit)
        self._bounded(len(body), "the maps file")
        return Download(body=body, content_type="application/octet-stream", filename="attrdist.npz")

    def stats(self) -> JSON:
        """Cache and job counters."""
        return {"model_calls": self.model_calls, "cached": len(self.cache), "cache_size": self.config.cache_size,
                "running": self.jobs.running, "waiting": self.jobs.waiting, "stopped": dict(self.stopped)}
