"""``attrdist serve``: a local web explorer of class-distribution explanations.

A threaded HTTP server from the standard library (no web framework to install, works offline) with a
single page and a small JSON API:

* ``GET /api/options``: the models this server offers (with the methods that apply to each), presets, samples,
  the range of the margin's control (:data:`attrdist.var.TAU_BOUNDS`).
* ``POST /api/explain?model=&methods=&classes=&target=&sample=`` (body: the image file, or empty with
  ``sample=``): raw maps of every class of the set (:func:`attrdist.explain.explain_image`), cached; returns
  the class set, a key and the margin each preset applies to this set (:func:`attrdist.var.preset_margins`).
* ``GET /api/var?key=&target=&preset=&temperatures=&tau=&magnitude=&normalize=&sign=``: VAR re-applied to the
  cached raw maps (:meth:`attrdist.explanation.Explanation.refine`, no forward or backward pass) and the
  panels, with one colour scale per row.
* ``GET /api/figure?key=&...&format=png|pdf|svg`` and ``GET /api/maps?key=&...``: the figure and the arrays
  (npz), as ``attrdist explain`` writes them.
* ``GET /api/stats``: cache size, model calls, jobs running and waiting.

Safe by construction: requests name a model the server was started with (``--models``), never a path;
checkpoints load with ``weights_only`` unless the command line says ``--trust-checkpoint``; images are decoded
with a pixel limit; every malformed request gets a 4xx with a message (no traceback, no 5xx); a full job
queue answers 503 with ``Retry-After`` (explains, VAR panels, figures and downloads alike); a request that arrives
slower than ``--header-timeout`` / ``--body-timeout`` gets 408; no answer may be framed by another page. It binds to
127.0.0.1 unless told otherwise, and warns when not.

Layers: the handler here parses each request into a typed request (:mod:`attrdist.app.params`) and gives it, with
the request's own :class:`~attrdist.app.deadline.Deadline`, to the :class:`~attrdist.app.explorer.Explorer`.
"""

from __future__ import annotations

import contextlib
import io
import ipaddress
import json
import math
import socket
import sys
from collections.abc import Callable, Mapping
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from urllib.parse import parse_qs, urlparse

from ..data import ImageReadError
from .config import AppConfig
from .deadline import Deadline
from .errors import ClientGone, TimeUp, UserError
from .explorer import Download, Explorer
from .params import ExplainRequest, FigureRequest, Query, VarRequest
from .reader import DeadlineReader

__all__ = ["AppConfig", "Explorer", "UserError", "make_server", "serve"]


def _finite(obj: object) -> object:
    """``obj`` with every NaN or infinite float replaced by ``None`` (JSON has no NaN: the page could not parse it)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_finite(v) for v in obj]
    return obj


#: The page loads nothing from elsewhere, and no page (this one included) may frame it.
_CSP = ("default-src 'self'; img-src 'self' data: blob:; style-src 'self' 'unsafe-inline'; "
        "script-src 'self' 'unsafe-inline'; frame-ancestors 'none'")
#: Every other answer (JSON, downloads, errors) runs nothing and may not be framed either.
_CSP_DATA = "default-src 'none'; frame-ancestors 'none'"

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
    # seconds one read or write may wait; reading the request line and headers, and the body, have their own total
    # deadlines (AppConfig.header_timeout, body_timeout), so a client that trickles its bytes cannot hold a thread
    timeout = 60
    default_request_version = "HTTP/1.0"  # answers to malformed request lines carry a status line

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass  # quiet; errors are returned to the page

    def setup(self) -> None:
        """Read the connection through a :class:`DeadlineReader` (the request's bytes arrive against the clock)."""
        super().setup()
        self.rfile.close()  # the socket's own reader (closed, so that the socket closes with the connection)
        self._reader = DeadlineReader(self.connection, self.timeout)
        self.rfile = io.BufferedReader(self._reader)
        self._responded = False

    def handle_one_request(self) -> None:
        """One request, its line and headers read within ``header_timeout`` (else 408, or a silent close if idle)."""
        self.command, self.request_version, self.requestline = "", self.default_request_version, ""  # until parsed
        self._responded = False
        self._reader.arm(self.explorer.config.header_timeout)
        super().handle_one_request()
        if self._reader.expired and not self._responded:
            self.close_connection = True
            if self._reader.received:  # a client that sent part of a request (an idle connection is just closed)
                self.send_error(HTTPStatus.REQUEST_TIMEOUT, f"the request did not arrive within "
                                f"{self._reader.limit:g} s (this server's --header-timeout)")

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

    def _send(self, status: int, body: bytes, ctype: str, extra: Mapping[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Frame-Options", "DENY")  # no page may frame any answer (clickjacking, blind work)
        headers = {"Content-Security-Policy": _CSP_DATA, **(extra or {})}
        self._responded = True
        for k, v in headers.items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, status: int, obj: object, extra: Mapping[str, str] | None = None) -> None:
        self._send(status, json.dumps(_finite(obj), allow_nan=False).encode(), "application/json", extra)

    def _check_origin(self) -> None:
        """Refuse what a page on another site could make a browser send (DNS rebinding, cross-site POSTs).

        The ``Host`` (one header) and the authority of an absolute-form request target must be ``localhost``, an IP
        address or a name the operator allowed; a POST must come from this origin (one ``Origin`` header,
        ``Sec-Fetch-Site``) and carry the image as ``application/octet-stream`` or ``image/*``, types a cross-site
        form or a no-CORS fetch cannot send without the browser asking first.
        """
        host = self._check_host()
        origins = self.headers.get_all("Origin") or []
        if len(origins) > 1:  # which one would the browser have meant? (the first used to win)
            self.close_connection = True
            raise UserError("two Origin headers; send one", HTTPStatus.BAD_REQUEST)
        if self.command != "POST":
            return
        ctype = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        refusal = None
        if origins and urlparse(origins[0]).netloc.lower() != host:
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

    def _check_host(self) -> str:
        """The request's one ``Host`` (lower case), checked, and the authority of an absolute-form target checked.

        Raises:
            UserError: 400 for two ``Host`` headers or a target naming a host this server does not answer to; 403 for
                a ``Host`` it does not answer to.
        """
        hosts = self.headers.get_all("Host") or []
        if len(hosts) > 1:  # RFC 9112, 3.2: a request with more than one Host is answered 400
            self.close_connection = True
            raise UserError("two Host headers; send one", HTTPStatus.BAD_REQUEST)
        host = (hosts[0] if hosts else "").strip().lower()
        if not self._host_allowed(host):
            raise UserError(f"this server does not answer to host {host[:80]!r} (start it with --allowed-hosts "
                            "NAME to allow a name)", HTTPStatus.FORBIDDEN)
        if not self.path.startswith("/") or self.path.startswith("//"):  # absolute-form: its authority is the host
            authority = urlparse(self.path).netloc.lower()
            if not authority:
                raise UserError("the request target must be a path starting with /")
            if not self._host_allowed(authority):
                self.close_connection = True
                raise UserError(f"the request target names host {authority[:80]!r}, which this server does not "
                                "answer to", HTTPStatus.BAD_REQUEST)
        return host

    def _host_allowed(self, host: str) -> bool:
        """Whether ``host`` (``name`` or ``name:port``) is ``localhost``, an IP address or an allowed name."""
        allowed = self.explorer.config.allowed_hosts
        name = host.rsplit(":", 1)[0] if host.count(":") == 1 or host.startswith("[") and "]:" in host else host
        return "*" in allowed or _local_or_ip(name) or name in allowed

    def _query(self) -> tuple[str, Query]:
        """The request's path and its query (each parameter's last value)."""
        url = urlparse(self.path)
        try:
            query = parse_qs(url.query, keep_blank_values=True, max_num_fields=64)
        except ValueError:
            raise UserError("too many query parameters") from None
        return url.path, {k: v[-1] for k, v in query.items()}

    def _guard(self, answer: Callable[[Deadline], None]) -> None:
        """Answer the request under its own :class:`Deadline`; every error becomes a JSON answer, never a traceback."""
        try:
            self._check_origin()
            answer(Deadline(self.explorer.config.request_timeout, self.connection))
        except ClientGone:
            self.explorer.stopped["disconnected"] += 1
            self.close_connection = True
        except UserError as err:
            if isinstance(err, TimeUp):
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

    def _get(self, deadline: Deadline) -> None:
        path, query = self._query()
        ex = self.explorer
        if path in ("/", "/index.html"):
            page = resources.files("attrdist.app").joinpath("static/index.html").read_bytes()
            self._send(HTTPStatus.OK, page, "text/html; charset=utf-8", {"Content-Security-Policy": _CSP})
        elif path == "/api/options":
            self._json(HTTPStatus.OK, ex.options())
        elif path == "/api/stats":
            self._json(HTTPStatus.OK, ex.stats())
        elif path == "/api/var":
            self._json(HTTPStatus.OK, ex.panels(VarRequest.parse(query), deadline))
        elif path == "/api/figure":
            self._download(ex.figure(FigureRequest.parse(query), deadline))
        elif path == "/api/maps":
            self._download(ex.arrays(VarRequest.parse(query), deadline))
        else:
            raise UserError(f"no page {path[:80]}", HTTPStatus.NOT_FOUND)

    def _download(self, file: Download) -> None:
        self._send(HTTPStatus.OK, file.body, file.content_type,
                   {"Content-Disposition": f'attachment; filename="{file.filename}"'})

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
        self._reader.arm(self.explorer.config.body_timeout)
        try:
            return self._read_body(length)
        except TimeoutError:
            self.close_connection = True
            raise UserError(f"the upload did not arrive within {self.explorer.config.body_timeout:g} s (this "
                            "server's --body-timeout)", HTTPStatus.REQUEST_TIMEOUT) from None

    def _read_body(self, length: int) -> bytes:
        """The body of ``length`` bytes; one over the upload limit is read and dropped (up to a limit), then refused."""
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

    def _post(self, deadline: Deadline) -> None:
        path, query = self._query()
        if path != "/api/explain":
            self._body()  # drain, so that the answer reaches the client
            raise UserError(f"no endpoint {path[:80]}", HTTPStatus.NOT_FOUND)
        request = ExplainRequest.parse(query, self._body())
        self._json(HTTPStatus.OK, self.explorer.explain(request, deadline))


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 64


class _Server6(_Server):
    address_family = socket.AF_INET6


def make_server(config: AppConfig | None = None, explorer: Explorer | None = None) -> ThreadingHTTPServer:
    """A threaded server (one thread per request) bound to ``config.host:config.port``.

    Args:
        config: The settings (default: the explorer's, or the defaults).
        explorer: The explorer that answers (default: a new one with ``config``).
    """
    explorer = explorer or Explorer(config)
    config = config or explorer.config
    handler = type("Handler", (_Handler,), {"explorer": explorer})
    server = _Server6 if ":" in config.host else _Server  # an IPv6 address such as ``::`` or ``::1``
    return server((config.host.strip("[]"), config.port), handler)


def serve(config: AppConfig | None = None) -> int:
    """Load the configured models, then run the explorer until interrupted (returns the exit status)."""
    config = config or AppConfig()
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
    address, port = server.socket.getsockname()[:2]  # the address bound (an IPv6 one has four parts)
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
