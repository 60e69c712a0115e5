"""``attrdist serve``: a local web explorer of class-distribution explanations.

A threaded HTTP server from the standard library (no web framework to install, works offline) with a
single page and a small JSON API:

* ``POST /api/explain?model=&methods=&classes=&target=&sample=`` (body: the image file, or empty with
  ``sample=``): raw maps of every class of the set, cached; returns the class set and a key.
* ``GET /api/var?key=&preset=&temperatures=&tau=&magnitude=&normalize=``: re-runs only the VAR step on the
  cached raw maps and returns the panels (no forward or backward pass).
* ``GET /api/figure?key=&...`` and ``GET /api/maps?key=&...``: the figure (PNG) and the arrays (npz), as
  ``attrdist explain`` writes them.
* ``GET /api/options`` and ``GET /api/stats`` (models, methods, presets; cache size and model calls).

Safe by default: it binds to 127.0.0.1, refuses uploads over ``max_upload_mb`` and anything that is not
an image with a visible message, serialises attribution per model (hooks are per model) while other
requests go on, and keeps at most ``cache_size`` explanations.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import threading
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from urllib.parse import parse_qs, urlparse

import numpy as np
from PIL import Image

from ..data import SAMPLES, ImageReadError, read_image_bytes, sample_image
from ..explain import explain_image
from ..explanation import Explanation
from ..methods import METHODS
from ..models import LoadedModel, load_model
from ..var import DEFAULT_PRESET, NORMALIZATIONS, PRESETS
from ..viz import dominance_image, overlay, row_scale
from .cache import LRUCache

__all__ = ["AppConfig", "Explorer", "UserError", "make_server", "serve"]


class UserError(ValueError):
    """A request the user can fix; its message is shown in the page."""

    def __init__(self, message: str, status: int = HTTPStatus.BAD_REQUEST) -> None:
        super().__init__(message)
        self.status = status


def _opt(text: str, **extra: object) -> dict:
    return {"help": text, **extra}


@dataclass(frozen=True, kw_only=True)
class AppConfig:
    """Settings of the web explorer (each field is an ``attrdist serve`` option).

    Attributes:
        host: Address to bind (default: localhost only).
        port: Port (0: any free port).
        max_upload_mb: Largest accepted upload.
        cache_size: Explanations kept for the VAR controls.
        models: Model names offered (requests choose among these only).
        device: Torch device.
    """

    host: str = field(default="127.0.0.1", metadata=_opt("address to bind (127.0.0.1: this machine only)"))
    port: int = field(default=7860, metadata=_opt("port (0: any free port)"))
    max_upload_mb: float = field(default=10.0, metadata=_opt("largest accepted upload in MB"))
    cache_size: int = field(default=16, metadata=_opt("explanations kept for the instant VAR controls"))
    models: tuple[str, ...] = field(default=("efficientnet_lite0",), metadata=_opt(
        "comma-separated models offered; requests choose among these only"))
    device: str = field(default="cpu", metadata=_opt("torch device"))


def _png(array: np.ndarray) -> str:
    img = Image.fromarray((np.clip(array, 0, 1) * 255).round().astype(np.uint8))
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


class Explorer:
    """The explorer's logic, independent of HTTP.

    Args:
        config: The settings.
    """

    def __init__(self, config: AppConfig = AppConfig()) -> None:  # noqa: B008
        self.config = config
        self.cache: LRUCache[Explanation] = LRUCache(config.cache_size)
        self._models: dict[str, LoadedModel] = {}
        self._model_locks: dict[str, threading.Lock] = {}
        self._lock = threading.Lock()
        self.model_calls = 0

    def _model(self, name: str) -> tuple[LoadedModel, threading.Lock]:
        with self._lock:
            if name not in self._models:
                try:
                    self._models[name] = load_model(name)
                except (ValueError, FileNotFoundError, ImportError) as err:
                    raise UserError(str(err)) from None
                self._model_locks[name] = threading.Lock()
                while len(self._models) > 2:  # keep at most two models in memory
                    old = next(iter(self._models))
                    del self._models[old], self._model_locks[old]
            return self._models[name], self._model_locks[name]

    def options(self) -> dict:
        """What the page offers."""
        return {
            "models": list(self.config.models),
            "methods": [{"name": n, "summary": c.summary} for n, c in METHODS.items()],
            "presets": {n: p.to_dict() for n, p in PRESETS.items()},
            "default_preset": DEFAULT_PRESET,
            "normalizations": list(NORMALIZATIONS),
            "samples": SAMPLES,
            "max_upload_mb": self.config.max_upload_mb,
        }

    def explain(self, data: bytes | None, sample: str | None, model: str, methods: list[str], classes: str,
                target: int | None) -> dict:
        """Compute (or reuse) the raw maps of an image and return its class set and cache key."""
        unknown = [m for m in methods if m not in METHODS]
        if not methods or unknown:
            raise UserError(f"unknown method(s) {unknown}; choose from {', '.join(METHODS.names())}")
        if data:
            image = read_image_bytes(data)
            digest = hashlib.sha256(data).hexdigest()
        elif sample:
            if sample not in SAMPLES:
                raise UserError(f"no sample {sample!r}; choose one of {sorted(SAMPLES)}")
            image, digest = sample_image(sample), f"sample:{sample}"
        else:
            raise UserError("upload an image or choose a sample")
        key = hashlib.sha256(json.dumps([digest, model, methods, classes, target]).encode()).hexdigest()[:24]
        exp = self.cache.get(key)
        if exp is None:
            lm, lock = self._model(model)
            with lock:  # attribution hooks are per model: one attribution at a time on it
                try:
                    exp = explain_image(lm, image, methods=methods, classes=classes, target=target,
                                        device=self.config.device)
                except ValueError as err:
                    raise UserError(str(err)) from None
                self.model_calls += 1
            self.cache.put(key, exp)
        return {"key": key, "classes": [{"index": c, "name": n, "probability": p} for c, n, p in
                                        zip(exp.classes, exp.class_names, exp.probabilities, strict=True)],
                "target": exp.classes.index(exp.target), "methods": list(exp.results)}

    def refined(self, key: str, params: dict[str, str]) -> Explanation:
        """The cached explanation with VAR re-run under the given parameters (no model call)."""
        exp = self.cache.get(key)
        if exp is None:
            raise UserError("this explanation is no longer cached: press Explain again", HTTPStatus.NOT_FOUND)
        preset = params.get("preset") or DEFAULT_PRESET
        try:
            temps = [float(t) for t in params["temperatures"].split(",") if t.strip()] \
                if params.get("temperatures") else None
            tau = float(params["tau"]) if params.get("tau") not in (None, "") else None
            return exp.refine(preset, temperatures=temps, tau=tau, magnitude=params.get("magnitude") or None,
                              normalize=params.get("normalize") or None)
        except ValueError as err:
            raise UserError(f"invalid VAR parameters: {err}") from None

    def panels(self, key: str, params: dict[str, str]) -> dict:
        """Per method, the vanilla and VAR panels (data URLs) and the class-dominance map."""
        exp = self.refined(key, params)
        img = np.asarray(exp.image)
        out = {}
        for name, r in exp.results.items():
            rows = {}
            for label, maps in (("vanilla", r.maps[0].numpy()), ("var", r.refined[0].numpy())):
                values, lo, hi, cmap = row_scale(maps.astype(np.float64))
                rows[label] = [_png(overlay(img, m, lo, hi, cmap)) for m in values]
            kept = [float(k.float().mean()) for k in r.keep[0]]
            out[name] = {**rows, "dominance": _png(dominance_image(r.q[0].numpy())), "kept": kept}
        return {"panels": out, "config": exp.config.to_dict(), "model_calls": self.model_calls}

    def figure(self, key: str, params: dict[str, str]) -> bytes:
        """The paper-style figure as PNG bytes."""
        import matplotlib.pyplot as plt

        from ..viz import explanation_figure

        fig = explanation_figure(self.refined(key, params))
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=100)
        plt.close(fig)
        return buf.getvalue()

    def arrays(self, key: str, params: dict[str, str]) -> bytes:
        """Raw maps, q and refined maps as npz bytes."""
        buf = io.BytesIO()
        np.savez_compressed(buf, **self.refined(key, params).arrays())
        return buf.getvalue()


class _Handler(BaseHTTPRequestHandler):
    explorer: Explorer
    server_version = "attrdist"

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass  # quiet; errors are returned to the page

    def _send(self, status: int, body: bytes, ctype: str, extra: dict | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("X-Content-Type-Options", "nosniff")
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def _json(self, status: int, obj: object) -> None:
        self._send(status, json.dumps(obj).encode(), "application/json")

    def _params(self) -> tuple[str, dict[str, str]]:
        url = urlparse(self.path)
        return url.path, {k: v[-1] for k, v in parse_qs(url.query).items()}

    def _guard(self, fn) -> None:  # noqa: ANN001
        try:
            fn()
        except UserError as err:
            self._json(err.status, {"error": str(err)})
        except ImageReadError as err:
            self._json(HTTPStatus.BAD_REQUEST, {"error": f"not an image we can read: {err}"})
        except Exception as err:  # noqa: BLE001 - the page must always get a message
            self._json(HTTPStatus.INTERNAL_SERVER_ERROR, {"error": f"{type(err).__name__}: {err}"})

    def do_GET(self) -> None:  # noqa: N802
        self._guard(self._get)

    def do_POST(self) -> None:  # noqa: N802
        self._guard(self._post)

    def _get(self) -> None:
        path, q = self._params()
        ex = self.explorer
        if path in ("/", "/index.html"):
            page = resources.files("attrdist.app").joinpath("static/index.html").read_bytes()
            self._send(HTTPStatus.OK, page, "text/html; charset=utf-8")
        elif path == "/api/options":
            self._json(HTTPStatus.OK, ex.options())
        elif path == "/api/stats":
            self._json(HTTPStatus.OK, {"model_calls": ex.model_calls, "cached": len(ex.cache),
                                       "cache_size": ex.config.cache_size})
        elif path == "/api/var":
            self._json(HTTPStatus.OK, ex.panels(q.get("key", ""), q))
        elif path == "/api/figure":
            self._send(HTTPStatus.OK, ex.figure(q.get("key", ""), q), "image/png",
                       {"Content-Disposition": 'attachment; filename="attrdist.png"'})
        elif path == "/api/maps":
            self._send(HTTPStatus.OK, ex.arrays(q.get("key", ""), q), "application/octet-stream",
                       {"Content-Disposition": 'attachment; filename="attrdist.npz"'})
        else:
            raise UserError(f"no page {path}", HTTPStatus.NOT_FOUND)

    def _post(self) -> None:
        path, q = self._params()
        if path != "/api/explain":
            raise UserError(f"no endpoint {path}", HTTPStatus.NOT_FOUND)
        length = int(self.headers.get("Content-Length") or 0)
        limit = int(self.explorer.config.max_upload_mb * 1024 * 1024)
        if length > limit:
            self.close_connection = True
            raise UserError(f"the upload is {length / 2**20:.1f} MB; the limit is "
                            f"{self.explorer.config.max_upload_mb:g} MB", HTTPStatus.REQUEST_ENTITY_TOO_LARGE)
        data = self.rfile.read(length) if length else b""
        target = q.get("target")
        result = self.explorer.explain(
            data or None, q.get("sample"), q.get("model") or self.explorer.config.models[0],
            [m for m in q.get("methods", "gradcam").split(",") if m], q.get("classes") or "top3+worst",
            int(target) if target not in (None, "") else None,
        )
        self._json(HTTPStatus.OK, result)


def make_server(config: AppConfig = AppConfig(), explorer: Explorer | None = None) -> ThreadingHTTPServer:  # noqa: B008
    """A threaded server (one thread per request) bound to ``config.host:config.port``."""
    handler = type("Handler", (_Handler,), {"explorer": explorer or Explorer(config)})
    server = ThreadingHTTPServer((config.host, config.port), handler)
    server.daemon_threads = True
    return server


def serve(config: AppConfig = AppConfig()) -> int:  # noqa: B008
    """Run the explorer until interrupted (returns the exit status)."""
    server = make_server(config)
    host, port = server.server_address[:2]
    print(f"attrdist explorer on http://{host}:{port}/  (Ctrl+C to stop)", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0
