"""``attrdist serve``: a local web explorer of class-distribution explanations.

A threaded HTTP server from the standard library (no web framework to install, works offline) with a
single page and a small JSON API:

* ``GET /api/options``: the models this server offers (with the methods that apply to each), presets, samples.
* ``POST /api/explain?model=&methods=&classes=&target=&sample=`` (body: the image file, or empty with
  ``sample=``): raw maps of every class of the set (:func:`attrdist.explain.explain_image`), cached; returns
  the class set and a key.
* ``GET /api/var?key=&target=&preset=&temperatures=&tau=&magnitude=&normalize=&sign=``: VAR re-applied to the
  cached raw maps (:meth:`attrdist.explanation.Explanation.refine`, no forward or backward pass) and the
  panels, with one colour scale per row.
* ``GET /api/figure?key=&...&format=png|pdf|svg`` and ``GET /api/maps?key=&...``: the figure and the arrays
  (npz), as ``attrdist explain`` writes them.
* ``GET /api/stats``: cache size, model calls, jobs running and waiting.

Safe by construction: requests name a model the server was started with (``--models``), never a path;
checkpoints load with ``weights_only`` unless the command line says ``--trust-checkpoint``; images are decoded
with a pixel limit; every malformed request gets a 4xx with a message (no traceback, no 5xx); a full job
queue answers 503 with ``Retry-After``. It binds to 127.0.0.1 unless told otherwise, and warns when not.
"""

from __future__ import annotations

import base64
import contextlib
import functools
import hashlib
import hmac
import io
import ipaddress
import json
import math
import re
import secrets
import select
import socket
import sys
import threading
import time
from collections.abc import Callable, Collection, Iterator
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from typing import TypeVar
from urllib.parse import parse_qs, urlparse

import numpy as np
import torch
from PIL import Image

from ..classes import DEFAULT_CLASSES, class_id, named_class_set, parse_class_set
from ..data import SAMPLES, ImageReadError, read_image_bytes, sample_image
from ..explain import explain_image
from ..explanation import Explanation
from ..methods import DEFAULT_METHODS, METHODS, MethodNotApplicableError, list_methods
from ..models import LoadedModel, load_model
from ..var import DEFAULT_PRESET, PRESETS, VARConfig
from ..viz import FORMATS, SIGNS, class_colors, dominance_image, overlay, row_scale
from .cache import LRUCache
from .config import AppConfig

__all__ = ["AppConfig", "Explorer", "UserError", "make_server", "serve"]

#: The most classes one request may explain.
MAX_CLASSES = 32
#: The most class maps (classes x methods) one figure draws (32 classes x 4 methods took two minutes).
MAX_FIGURE_MAPS = 48
_KEY = re.compile(r"^[0-9a-f]{24}$")
_T = TypeVar("_T")


class UserError(ValueError):
    """A request the user can fix; its message is shown in the page."""

    def __init__(self, message: str, status: int = HTTPStatus.BAD_REQUEST, headers: dict | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.headers = headers or {}


def _finite(obj: object) -> object:
    """``obj`` with every NaN or infinite float replaced by ``None`` (JSON has no NaN: the page could not parse it)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_finite(v) for v in obj]
    return obj


class _ClientGone(ConnectionError):
    """The client closed its connection while its request was waiting or running."""


class _TimeUp(UserError):
    """A request ran past the operator's ``--request-timeout``."""


class _Budget:
    """What one request may still spend: a deadline, and its client still connected (checked at most every 0.2 s).

    The request's thread holds it (:data:`_local`); :func:`_checkpoint` raises once the time is up or the client
    has left. The model's modules call it before each forward (:meth:`Explorer.model`), the job queue while waiting.
    """

    def __init__(self, timeout: float, sock: socket.socket | None) -> None:
        self.timeout = timeout
        self.deadline = time.monotonic() + timeout if timeout > 0 else math.inf
        self._sock = sock
        self._next_peek = 0.0

    def check(self) -> None:
        now = time.monotonic()
        if now > self.deadline:
            raise _TimeUp(f"the request took longer than this server's limit of {self.timeout:g} s "
                            "(explain fewer classes or methods, or start the server with a larger "
                            "--request-timeout)", HTTPStatus.UNPROCESSABLE_ENTITY)
        if self._sock is None or now < self._next_peek:
            return
        self._next_peek = now + 0.2
        try:  # the request was read whole: anything readable now is the client's end of the connection
            readable = select.select([self._sock], [], [], 0)[0]
            gone = bool(readable) and self._sock.recv(1, socket.MSG_PEEK) == b""
        except (OSError, ValueError):
            gone = True
        if gone:
            raise _ClientGone("the client disconnected")


_local = threading.local()


def _checkpoint(*_: object) -> None:
    """Stop the current request if its time is up or its client left (a no-op outside requests)."""
    budget: _Budget | None = getattr(_local, "budget", None)
    if budget is not None:
        budget.check()


@contextlib.contextmanager
def _checked(model: torch.nn.Module) -> Iterator[None]:
    """Every module of ``model`` calls :func:`_checkpoint` before its forward, while the block runs."""
    handles = [m.register_forward_pre_hook(_checkpoint) for m in model.modules()]
    try:
        yield
    finally:
        for h in handles:
            h.remove()


@contextlib.contextmanager
def _budget(timeout: float, sock: socket.socket | None) -> Iterator[None]:
    """Give the current thread's request a :class:`_Budget`."""
    _local.budget = _Budget(timeout, sock)
    try:
        yield
    finally:
        _local.budget = None


def _png(array: np.ndarray) -> str:
    img = Image.fromarray((np.clip(array, 0, 1) * 255).round().astype(np.uint8))
    buf = io.BytesIO()
    img.save(buf, format="PNG", compress_level=1)  # 4x faster than the default level, 12% larger
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


@functools.lru_cache(maxsize=16)
def _colormap_png(cmap: str) -> str:
    import matplotlib.pyplot as plt

    return _png(plt.get_cmap(cmap)(np.linspace(0, 1, 256))[None, :, :3].repeat(8, 0))


class _Jobs:
    """At most ``workers`` attribution jobs at once and ``queue`` waiting; identical jobs share one computation."""

    def __init__(self, workers: int, queue: int) -> None:
        self._slots = threading.BoundedSemaphore(workers)
        self._workers = workers
        self._lock = threading.Lock()
        self._waiting = 0
        self._queue = queue
        self._inflight: dict[str, threading.Event] = {}
        self.running = 0

    def run(self, key: str, compute: Callable[[], _T], lookup: Callable[[], _T | None]) -> _T:
        """``lookup()`` if cached, else wait for an identical job in flight, else ``compute()`` in a slot."""
        while True:
            with self._lock:
                found = lookup()
                if found is not None:
                    return found
                event = self._inflight.get(key)
                if event is None:
                    if self._waiting >= self._queue + max(0, self._workers - self.running):
                        raise UserError("the explorer is busy; try again in a few seconds",
                                        HTTPStatus.SERVICE_UNAVAILABLE, {"Retry-After": "5"})
                    event = self._inflight[key] = threading.Event()
                    self._waiting += 1
                    mine = True
                else:
                    mine = False
            if not mine:
                while not event.wait(0.2):
                    _checkpoint()
                continue  # the result is cached now (or the job failed: compute it here)
            try:
                while not self._slots.acquire(timeout=0.2):
                    try:
                        _checkpoint()
                    except BaseException:
                        with self._lock:
                            self._waiting -= 1
                        raise
                try:
                    with self._lock:
                        self._waiting -= 1
                        self.running += 1
                    try:
                        _checkpoint()
                        return compute()
                    finally:
                        with self._lock:
                            self.running -= 1
                finally:
                    self._slots.release()
            finally:
                with self._lock:
                    self._inflight.pop(key, None)
                event.set()

    @property
    def waiting(self) -> int:
        """Jobs waiting for a worker."""
        return self._waiting


def _number(params: dict[str, str], name: str, kind: type = float, lo: float = -math.inf,
            hi: float = math.inf) -> float | int | None:
    text = params.get(name, "").strip()
    if not text:
        return None
    try:
        value = kind(text)
    except ValueError:
        raise UserError(f"{name} must be {'an integer' if kind is int else 'a number'}, got {text[:40]!r}") from None
    if not (lo <= value <= hi) or (kind is float and not math.isfinite(value)):
        raise UserError(f"{name} must lie in [{lo}, {hi}], got {text[:40]!r}")
    return value


def _choice(params: dict[str, str], name: str, choices: Collection[str]) -> str | None:
    value = params.get(name, "").strip()
    if value and value not in choices:
        raise UserError(f"unknown {name} {value[:40]!r}; choose one of {', '.join(choices)}")
    return value or None


class Explorer:
    """The explorer's logic, independent of HTTP.

    Args:
        config: The settings.
        models: Already loaded models by name (default: each of ``config.models`` is loaded on first use).
    """

    def __init__(self, config: AppConfig = AppConfig(), models: dict[str, LoadedModel] | None = None) -> None:  # noqa: B008
        self.config = config
        self.cache: LRUCache[Explanation] = LRUCache(config.cache_size)
        self._models: dict[str, LoadedModel] = dict(models or {})
        self._model_locks = {name: threading.Lock() for name in config.models}
        self._lock = threading.Lock()
        self.jobs = _Jobs(config.workers, config.queue)
        self.model_calls = 0
        self.stopped = {"timeout": 0, "disconnected": 0}
        self._drawn: LRUCache[dict] = LRUCache(config.cache_size)  # what no VAR control changes, per key and sign
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

    def options(self) -> dict:
        """What the page offers: the models (and the methods that apply to each), presets, samples."""
        models = []
        for name in self.config.models:
            arch = self.model(name).architecture
            models.append({"name": name, "architecture": arch, "methods": [
                {"name": n, "display": METHODS.get(n).display_name, "summary": METHODS.get(n).summary}
                for n in list_methods(arch)]})
        return {
            "models": models,
            "default_methods": list(DEFAULT_METHODS),
            "default_classes": DEFAULT_CLASSES,
            "presets": {n: p.to_dict() for n, p in PRESETS.items()},
            "default_preset": DEFAULT_PRESET,
            "var_choices": {name: list(allowed) for name, allowed in VARConfig.choices().items()},
            "signs": list(SIGNS),
            "samples": SAMPLES,
            "max_upload_mb": self.config.max_upload_mb,
        }

    def explain(self, data: bytes | None, params: dict[str, str]) -> dict:
        """Compute (or reuse) the raw maps of an image and return its class set and cache key.

        Raises:
            UserError: On anything the request got wrong.
        """
        name = params.get("model") or self.config.models[0]
        lm = self.model(name)
        methods = [m for m in params.get("methods", ",".join(DEFAULT_METHODS)).split(",") if m]
        applicable = list_methods(lm.architecture)
        bad = [m[:40] for m in methods if m not in applicable]
        if not methods or bad or len(methods) > len(applicable):
            raise UserError(f"unknown or inapplicable method(s) {bad}; for {name} choose from {', '.join(applicable)}")
        classes = params.get("classes") or DEFAULT_CLASSES
        if len(classes) > 2000:  # refused, never cut: a cut spec would explain other classes
            raise UserError(f"the class set is {len(classes)} characters long; at most 2000")
        try:
            rule = parse_class_set(classes)
        except ValueError as err:
            if re.fullmatch(r"[\d,\s]*", classes):
                raise UserError(str(err)) from None
            try:  # class names, alone or among ids: "tiger cat, tabby, 285"
                classes = named_class_set(classes, lm.class_names)
            except ValueError as named:
                raise UserError(f"unknown class set {classes[:80]!r}: {named}") from None
            try:
                rule = parse_class_set(classes)
            except ValueError as err:
                raise UserError(str(err)) from None
        n_out = len(lm.class_names)
        if rule.fixed and max(rule.fixed) >= n_out or rule.size > n_out:
            raise UserError(f"class set {classes[:80]!r} does not fit the model's {n_out} classes")
        if rule.size > MAX_CLASSES:  # one attribution per class and method, all held in the cache
            raise UserError(f"class set {classes[:80]!r} has {rule.size} classes; the explorer explains at most "
                            f"{MAX_CLASSES} at once (the command line has no limit)")
        name_or_id = params.get("target", "").strip()
        if not name_or_id or name_or_id.lstrip("+-").isdigit():
            target = _number(params, "target", int, 0, n_out - 1)
        else:  # a class name
            try:
                target = class_id(name_or_id[:200], lm.class_names)
            except ValueError as err:
                raise UserError(f"target must be an integer class id or a class name: {err}") from None
        sample = params.get("sample")
        if data:
            digest = hashlib.sha256(data).hexdigest()
        elif sample:
            if sample not in SAMPLES:
                raise UserError(f"no sample {sample[:40]!r}; choose one of {', '.join(SAMPLES)}")
            digest = f"sample:{sample}"
        else:
            raise UserError("upload an image or choose a sample photo")
        # keyed with this server's secret: equal requests share a result, but no one can guess another's key
        request = json.dumps([digest, name, methods, rule.spec, target]).encode()
        key = hmac.new(self._secret, request, hashlib.sha256).hexdigest()[:24]

        def compute() -> Explanation:  # admitted by the job queue: only now is the upload decoded
            image = read_image_bytes(data, max_pixels=int(self.config.max_megapixels * 1e6)) if data else \
                sample_image(sample or "")
            with self._model_locks[name], _checked(lm.model):  # one attribution at a time on a model; each of
                try:                                              # its forwards first checks the request's budget
                    exp = explain_image(lm, image, methods=methods, classes=rule, target=target,
                                        device=self.config.device)
                except UserError:
                    raise  # the request's budget ran out (a ValueError too, already worded for the page)
                except (ValueError, MethodNotApplicableError) as err:
                    raise UserError(str(err)) from None
                self.model_calls += 1
            self.cache.put(key, exp)
            return exp

        exp = self.jobs.run(key, compute, lambda: self.cache.get(key))
        return {"key": key, "model": name, "target": exp.target,
                "classes": [{"index": c, "name": n, "probability": p, "color": colour} for c, n, p, colour in
                            zip(exp.classes, exp.class_names, exp.probabilities, class_colors(exp.classes),
                                strict=True)],
                "methods": [{"name": m, "display": exp.display_names.get(m, m)} for m in exp.results]}

    def refined(self, params: dict[str, str]) -> Explanation:
        """The cached explanation with VAR re-applied under the request's parameters (no model call)."""
        key = params.get("key", "")
        if not _KEY.match(key):
            raise UserError("key must be the key /api/explain returned")
        exp = self.cache.get(key)
        if exp is None:
            raise UserError("this explanation is no longer cached: press Explain again", HTTPStatus.NOT_FOUND)
        preset = _choice(params, "preset", PRESETS) or DEFAULT_PRESET
        temps = params.get("temperatures", "").strip()
        try:
            temperatures = [float(t) for t in temps.split(",") if t.strip()][:16] if temps else None
        except ValueError:
            raise UserError(f"temperatures must be comma-separated numbers, got {temps[:40]!r}") from None
        if temperatures is not None and not all(math.isfinite(t) and t > 0 for t in temperatures):
            raise UserError("temperatures must be positive numbers")
        tau = _number(params, "tau", float, -0.99, 0.99)
        overrides = {
            "temperatures": temperatures,
            # the page has one margin control: it sets the margin that applies, also where a preset has its own
            # for ranked class sets (authors-code's tau_ranked would win over tau and the control do nothing)
            "tau": tau, "tau_ranked": tau,
            **{name: _choice(params, name, allowed) for name, allowed in VARConfig.choices().items()},
        }
        refined_key = json.dumps([key, preset, overrides], sort_keys=True)
        out = self._refined.get(refined_key)
        if out is None:
            try:
                out = exp.refine(preset, **overrides)
            except ValueError as err:
                raise UserError(f"invalid VAR parameters: {err}") from None
            self._refined.put(refined_key, out)
        name_or_id = params.get("target", "").strip()
        if name_or_id and not name_or_id.lstrip("+-").isdigit():  # a class name of the set
            try:  # the name's place among the set's names (matched as everywhere: case-insensitive)
                target = out.classes[class_id(name_or_id[:200], out.class_names)]
            except ValueError:
                raise UserError(f"target {name_or_id[:80]!r} is not in the class set {out.class_names}") from None
        else:
            target = _number(params, "target", int, 0, 10**6)
        if target is not None:
            if target not in out.classes:
                raise UserError(f"target {target} is not in the class set {out.classes}")
            out = out.with_target(int(target))
        return out

    def panels(self, params: dict[str, str]) -> dict:
        """Per method, the vanilla and VAR panels (data URLs), each row's colour scale, the class dominance."""
        exp = self.refined(params)
        sign = _choice(params, "sign", SIGNS) or "auto"
        img = np.asarray(exp.image)
        # the image and the vanilla rows depend on the key and the sign only: drawn once, not on every VAR control
        drawn_key = f"{params['key']}:{sign}"
        drawn = self._drawn.get(drawn_key)
        if drawn is None:
            drawn = {"image": _png(img / 255.0),
                     "vanilla": {name: self._row(img, r.maps[0].numpy(), sign) for name, r in exp.results.items()}}
            self._drawn.put(drawn_key, drawn)
        out = {}
        for name, r in exp.results.items():
            kept = [float(k.float().mean()) for k in r.keep[0]]
            out[name] = {"vanilla": drawn["vanilla"][name], "var": self._row(img, r.refined[0].numpy(), sign),
                         "dominance": _png(dominance_image(r.q[0].numpy(), classes=exp.classes)), "kept": kept,
                         "display": exp.display_names.get(name, name)}
        return {"panels": out, "image": drawn["image"], "target": exp.target, "config": exp.config.to_dict(),
                "model_calls": self.model_calls}

    @staticmethod
    def _row(img: np.ndarray, maps: np.ndarray, sign: str) -> dict:
        """One row of panels: each map over the image (data URLs) on the row's colour scale."""
        values, lo, hi, cmap = row_scale(maps.astype(np.float64), sign)
        return {"panels": [_png(overlay(img, m, lo, hi, cmap)) for m in values],
                "scale": {"min": lo, "max": hi, "colormap": _colormap_png(cmap)}}

    def figure(self, params: dict[str, str]) -> tuple[bytes, str]:
        """The paper-style figure (PNG, PDF or SVG) and its content type."""
        from ..viz import explanation_figure, save_figure

        fmt = _choice(params, "format", FORMATS) or "png"
        sign = _choice(params, "sign", SIGNS) or "auto"
        import tempfile
        from pathlib import Path

        exp = self.refined(params)
        maps = sum(r.maps.shape[1] for r in exp.results.values())
        if maps > MAX_FIGURE_MAPS:  # drawing time and memory grow with the panels: bounded like an attribution
            raise UserError(f"the figure would draw {maps} class maps per row; at most {MAX_FIGURE_MAPS} (explain "
                            "fewer classes or methods; the maps download holds every array)")

        def draw() -> bytes:  # admitted by the same job queue as the attributions
            with tempfile.TemporaryDirectory() as tmp:
                path = save_figure(explanation_figure(exp, sign=sign), Path(tmp) / f"figure.{fmt}")[0]
                return path.read_bytes()

        data = self.jobs.run(f"figure:{secrets.token_hex(8)}", draw, lambda: None)
        return data, {"png": "image/png", "pdf": "application/pdf", "svg": "image/svg+xml"}[fmt]

    def arrays(self, params: dict[str, str]) -> bytes:
        """Raw maps, q and refined maps as npz bytes."""
        buf = io.BytesIO()
        np.savez_compressed(buf, **self.refined(params).arrays())
        return buf.getvalue()

    def stats(self) -> dict:
        """Cache and job counters."""
        return {"model_calls": self.model_calls, "cached": len(self.cache), "cache_size": self.config.cache_size,
                "running": self.jobs.running, "waiting": self.jobs.waiting, "stopped": dict(self.stopped)}


#: The page loads nothing from elsewhere.
_CSP = ("default-src 'self'; img-src 'self' data: blob:; style-src 'self' 'unsafe-inline'; "
        "script-src 'self' 'unsafe-inline'")

#: Bodies larger than the limit but at most this much are read and discarded, so that the client can read the
#: 413 (a client that is still sending when the connection closes sees a broken pipe, not the answer).
_DRAIN_LIMIT = 64 * 2**20


def _local_or_ip(name: str) -> bool:
    """Whether a ``Host`` name is this machine's or an address (a DNS-rebinding page sends a domain name)."""
    if name in ("localhost", "localhost.") or name.endswith(".localhost"):
        return True
    try:
        ipaddress.ip_address(name.strip("[]"))
    except ValueError:
        return False
    return True


class _Handler(BaseHTTPRequestHandler):
    explorer: Explorer
    server_version = "attrdist"
    sys_version = ""
    timeout = 60  # seconds without progress before a connection is dropped (slow clients cannot hold threads)
    default_request_version = "HTTP/1.0"  # answers to malformed request lines carry a status line

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass  # quiet; errors are returned to the page

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """Errors raised by the HTTP layer itself (bad request lines, unknown methods) as JSON, never a 5xx."""
        if code == HTTPStatus.NOT_IMPLEMENTED:  # an HTTP method this server does not have
            code, message = HTTPStatus.METHOD_NOT_ALLOWED, f"method {self.command!r} not allowed; use GET or POST"
        self.close_connection = True
        try:
            self._json(code, {"error": message or HTTPStatus(code).phrase}, {"Allow": "GET, POST"}
                       if code == HTTPStatus.METHOD_NOT_ALLOWED else None)
        except OSError:
            pass

    def _send(self, status: int, body: bytes, ctype: str, extra: dict | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Cache-Control", "no-store")
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, status: int, obj: object, extra: dict | None = None) -> None:
        self._send(status, json.dumps(_finite(obj), allow_nan=False).encode(), "application/json", extra)

    def _check_origin(self) -> None:
        """Refuse what a page on another site could make a browser send (DNS rebinding, cross-site POSTs).

        The ``Host`` must be ``localhost``, an IP address or a name the operator allowed; a POST must come from
        this origin (``Origin``, ``Sec-Fetch-Site``) and carry the image as ``application/octet-stream`` or
        ``image/*``, types a cross-site form or a no-CORS fetch cannot send without the browser asking first.
        """
        allowed = self.explorer.config.allowed_hosts
        host = (self.headers.get("Host") or "").strip().lower()
        name = host.rsplit(":", 1)[0] if host.count(":") == 1 or host.startswith("[") and "]:" in host else host
        if "*" not in allowed and not _local_or_ip(name) and name not in allowed:
            raise UserError(f"this server does not answer to host {host[:80]!r} (start it with --allowed-hosts "
                            "NAME to allow a name)", HTTPStatus.FORBIDDEN)
        if self.command != "POST":
            return
        origin = self.headers.get("Origin")
        ctype = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        refusal = None
        if origin is not None and urlparse(origin).netloc.lower() != host:
            refusal = UserError("cross-origin requests are refused", HTTPStatus.FORBIDDEN)
        elif (self.headers.get("Sec-Fetch-Site") or "same-origin").lower() not in ("same-origin", "none"):
            refusal = UserError("cross-site requests are refused", HTTPStatus.FORBIDDEN)
        elif ctype != "application/octet-stream" and not ctype.startswith("image/"):
            refusal = UserError(f"send the image as application/octet-stream or image/*, not "
                                f"{ctype[:60] or 'no type'!r}", HTTPStatus.UNSUPPORTED_MEDIA_TYPE)
        if refusal is not None:
            with contextlib.suppress(UserError):
                self._body()  # read and drop what was sent (never decoded), so that the client reads the answer
            self.close_connection = True
            raise refusal

    def _params(self) -> tuple[str, dict[str, str]]:
        url = urlparse(self.path)
        try:
            query = parse_qs(url.query, keep_blank_values=True, max_num_fields=64)
        except ValueError:
            raise UserError("too many query parameters") from None
        return url.path, {k: v[-1] for k, v in query.items()}

    def _guard(self, fn) -> None:  # noqa: ANN001
        try:
            self._check_origin()
            with _budget(self.explorer.config.request_timeout, self.connection):
                fn()
        except _ClientGone:
            self.explorer.stopped["disconnected"] += 1
            self.close_connection = True
        except UserError as err:
            if isinstance(err, _TimeUp):
                self.explorer.stopped["timeout"] += 1
            self._json(err.status, {"error": str(err)}, err.headers)
        except ImageReadError as err:
            self._json(HTTPStatus.BAD_REQUEST, {"error": f"not an image we can read: {err}"})
        except (ConnectionError, TimeoutError):
            self.close_connection = True
        except Exception as err:  # noqa: BLE001 - a bug: say so without a traceback, and keep serving
            print(f"attrdist serve: internal error on {self.command} {self.path[:200]}: {type(err).__name__}: {err}",
                  file=sys.stderr)
            self._json(HTTPStatus.INTERNAL_SERVER_ERROR, {"error": "internal error; the server log has the details"})

    def do_GET(self) -> None:  # noqa: N802
        self._guard(self._get)

    def do_HEAD(self) -> None:  # noqa: N802
        self._guard(self._get)

    def do_POST(self) -> None:  # noqa: N802
        self._guard(self._post)

    def _get(self) -> None:
        path, q = self._params()
        ex = self.explorer
        if path in ("/", "/index.html"):
            page = resources.files("attrdist.app").joinpath("static/index.html").read_bytes()
            self._send(HTTPStatus.OK, page, "text/html; charset=utf-8", {"Content-Security-Policy": _CSP})
        elif path == "/api/options":
            self._json(HTTPStatus.OK, ex.options())
        elif path == "/api/stats":
            self._json(HTTPStatus.OK, ex.stats())
        elif path == "/api/var":
            self._json(HTTPStatus.OK, ex.panels(q))
        elif path == "/api/figure":
            body, ctype = ex.figure(q)
            ext = ctype.split("/")[1].split("+")[0]
            self._send(HTTPStatus.OK, body, ctype, {"Content-Disposition": f'attachment; filename="attrdist.{ext}"'})
        elif path == "/api/maps":
            self._send(HTTPStatus.OK, ex.arrays(q), "application/octet-stream",
                       {"Content-Disposition": 'attachment; filename="attrdist.npz"'})
        else:
            raise UserError(f"no page {path[:80]}", HTTPStatus.NOT_FOUND)

    def _body(self) -> bytes:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            self.close_connection = True
            raise UserError("send the image with a Content-Length (chunked uploads are not accepted)",
                            HTTPStatus.LENGTH_REQUIRED)
        values = self.headers.get_all("Content-Length") or []
        if len(values) > 1 or not all(v.strip().isascii() and v.strip().isdigit() for v in values):
            self.close_connection = True  # int() would read "1_4_7" as 147, and two lengths are ambiguous
            raise UserError("invalid Content-Length: one decimal number")
        length = int(values[0]) if values else 0
        if length < 0:
            self.close_connection = True
            raise UserError("invalid Content-Length")
        limit = int(self.explorer.config.max_upload_mb * 2**20)
        if length > limit:
            self.close_connection = True
            if length <= _DRAIN_LIMIT:  # read and drop it, so that the client gets to read the answer
                remaining = length
                while remaining > 0:
                    chunk = self.rfile.read(min(remaining, 2**20))
                    if not chunk:
                        break
                    remaining -= len(chunk)
            raise UserError(f"the upload is {length / 2**20:.1f} MB; the limit is "
                            f"{self.explorer.config.max_upload_mb:g} MB", HTTPStatus.REQUEST_ENTITY_TOO_LARGE)
        data = self.rfile.read(length) if length else b""
        if len(data) < length:
            self.close_connection = True
            raise UserError("the upload ended before its Content-Length")
        return data

    def _post(self) -> None:
        path, q = self._params()
        if path != "/api/explain":
            self._body()  # drain, so that the answer reaches the client
            raise UserError(f"no endpoint {path[:80]}", HTTPStatus.NOT_FOUND)
        data = self._body()
        self._json(HTTPStatus.OK, self.explorer.explain(data or None, q))


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 64


class _Server6(_Server):
    address_family = socket.AF_INET6


def make_server(config: AppConfig = AppConfig(), explorer: Explorer | None = None) -> ThreadingHTTPServer:  # noqa: B008
    """A threaded server (one thread per request) bound to ``config.host:config.port``."""
    handler = type("Handler", (_Handler,), {"explorer": explorer or Explorer(config)})
    server = _Server6 if ":" in config.host else _Server  # an IPv6 address such as ``::`` or ``::1``
    return server((config.host.strip("[]"), config.port), handler)


def serve(config: AppConfig = AppConfig()) -> int:  # noqa: B008
    """Load the configured models, then run the explorer until interrupted (returns the exit status)."""
    explorer = Explorer(config)
    try:
        for name in config.models:
            explorer.model(name)
    except (ValueError, FileNotFoundError, ImportError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    try:
        server = make_server(config, explorer)
    except OSError as err:  # port in use, an address this machine does not have, a privileged port
        print(f"error: cannot listen on {config.host}:{config.port}: {err.strerror or err} (choose another "
              "--port or --host)", file=sys.stderr)
        return 2
    address, port = server.server_address[:2]
    host = f"[{address}]" if ":" in str(address) else str(address)  # as a URL writes it
    if address not in ("127.0.0.1", "localhost", "::1"):
        print(f"warning: the explorer is reachable from other machines at {host}:{port}; anyone who can reach "
              "it can run attributions on this machine", file=sys.stderr, flush=True)
    print(f"attrdist explorer on http://{host}:{port}/  (Ctrl+C to stop)", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0
