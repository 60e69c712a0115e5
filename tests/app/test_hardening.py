"""Issue 34 (hardening, round three), the explorer's part: no page in a frame (headers on every answer), time limits
that hold (between class gradients, and for reading a request), ``/api/var`` and ``/api/maps`` in the job queue with
bounded answers."""

import contextlib
import copy
import json
import socket
import threading
import time
import urllib.error
import urllib.request

import pytest
import torch

from attrdist.app import AppConfig, Deadline, Explorer, make_server
from attrdist.app.errors import TimeUp
from attrdist.methods.base import class_gradients
from attrdist.models import LoadedModel


def _serve(explorer):
    srv = make_server(explorer.config, explorer)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv, srv.server_address[1]


@contextlib.contextmanager
def serving(explorer):
    srv, port = _serve(explorer)
    try:
        yield port
    finally:
        srv.shutdown()
        srv.server_close()


def _get(port, path, headers=None, data=None):
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=data, headers=headers or {},
                                 method="POST" if data is not None else "GET")
    try:
        with urllib.request.urlopen(req, timeout=120) as r:
            return r.status, r.headers, r.read()
    except urllib.error.HTTPError as err:
        return err.code, err.headers, err.read()


@pytest.fixture(scope="module")
def explained(lite0):
    """A served explorer with one explanation cached: ``(port, explorer, key)``."""
    explorer = Explorer(AppConfig(port=0, cache_size=4), models={"efficientnet_lite0": lite0})
    with serving(explorer) as port:
        status, _, body = _get(port, "/api/explain?sample=chelsea&methods=gradcam&classes=top3",
                               {"Content-Type": "application/octet-stream"}, b"")
        assert status == 200, body
        yield port, explorer, json.loads(body)["key"]


# item 2: no page in a frame


def test_every_answer_forbids_framing(explained):
    port, _, key = explained
    paths = ["/", "/api/options", "/api/stats", f"/api/var?key={key}", f"/api/figure?key={key}&format=png",
             f"/api/maps?key={key}", "/nope", "/api/var?key=bad"]
    for path in paths:
        status, headers, _ = _get(port, path)
        assert headers["X-Frame-Options"] == "DENY", (path, status)
        assert "frame-ancestors 'none'" in headers["Content-Security-Policy"], (path, status)
    status, headers, _ = _get(port, "/api/explain", {"Content-Type": "text/plain"}, b"x")  # an error of a POST
    assert status == 415 and headers["X-Frame-Options"] == "DENY"
    s = socket.create_connection(("127.0.0.1", port), timeout=10)  # an error of the HTTP layer itself
    s.sendall(b"NONSENSE\r\n\r\n")
    head = s.recv(65536).decode("latin-1")
    s.close()
    assert " 400 " in head.splitlines()[0] and "X-Frame-Options: DENY" in head and "frame-ancestors 'none'" in head


def test_a_link_fills_the_form_but_explains_only_on_a_click():
    from importlib import resources

    page = resources.files("attrdist.app").joinpath("static/index.html").read_text()
    assert "if (auto) explain()" not in page and "applyHash()) explain()" not in page


# item 6: time limits that hold


class _SlowBackward(torch.nn.Module):
    """Identity whose backward sleeps ``delay`` seconds (a class gradient that takes long)."""

    def __init__(self, delay):
        super().__init__()
        self.delay = delay

    def forward(self, x):
        if x.requires_grad:
            x.register_hook(lambda g: time.sleep(self.delay))
        return x * 1.0


def test_the_deadline_is_checked_between_class_gradients():
    model = torch.nn.Sequential(torch.nn.Linear(4, 6), _SlowBackward(0.2), torch.nn.Linear(6, 6))
    x = torch.zeros(1, 4, requires_grad=True)
    deadline = Deadline(0.3)
    with deadline.watch(model):
        out = model(x)
        start = time.monotonic()
        with pytest.raises(TimeUp):
            class_gradients(out, torch.arange(6)[None], [x], "sequential")
    assert time.monotonic() - start < 0.9  # stopped after two or three of the six gradients
    assert all(not m._forward_pre_hooks and not m._forward_hooks for m in model.modules())
    out = model(x)  # no hook left on new tensors either
    assert len(class_gradients(out, torch.arange(6)[None], [x], "sequential")) == 1


def _slow_gradients(lite0, delay=1.0):
    """lite0 whose every class gradient sleeps ``delay`` seconds (its forward is as fast as lite0's)."""
    model = copy.deepcopy(lite0.model)
    model._fc = torch.nn.Sequential(_SlowBackward(delay), model._fc)
    return LoadedModel(model=model, preprocess=lite0.preprocess, class_names=lite0.class_names, name="slow",
                       weights="test")


def test_a_request_stops_within_its_limit_during_the_class_gradients(lite0):
    explorer = Explorer(AppConfig(port=0, request_timeout=2.5, models=("slow",)),
                        models={"slow": _slow_gradients(lite0)})
    with serving(explorer) as port:
        start = time.monotonic()
        status, _, body = _get(port, "/api/explain?model=slow&sample=chelsea&methods=gradcam&classes=top8",
                               {"Content-Type": "application/octet-stream"}, b"")
        took = time.monotonic() - start
    assert status == 422 and "--request-timeout" in json.loads(body)["error"], body
    assert took < 5.0, took  # 8 class gradients of 1 s each (measured in two modes) would take 10 s and more
    assert explorer.model_calls == 0 and len(explorer.cache) == 0


def test_a_client_that_leaves_during_the_class_gradients_is_noticed(lite0):
    explorer = Explorer(AppConfig(port=0, request_timeout=0, models=("slow",)),
                        models={"slow": _slow_gradients(lite0)})
    with serving(explorer) as port:
        s = socket.create_connection(("127.0.0.1", port), timeout=30)
        s.sendall(f"POST /api/explain?model=slow&sample=chelsea&methods=gradcam&classes=top8 HTTP/1.1\r\n"
                  f"Host: 127.0.0.1:{port}\r\nContent-Type: image/png\r\nContent-Length: 0\r\n\r\n".encode())
        end = time.monotonic() + 30
        while not explorer.jobs.running and time.monotonic() < end:
            time.sleep(0.05)
        time.sleep(2.5)  # the forward is done: the class gradients run
        s.close()
        left = time.monotonic()
        while explorer.stopped["disconnected"] == 0 and time.monotonic() < left + 10:
            time.sleep(0.05)
        assert explorer.stopped["disconnected"] == 1 and time.monotonic() - left < 3.0, explorer.stats()
        assert explorer.model_calls == 0


def _trickle(port, data, step, stop):
    """Send ``data`` one byte every ``step`` seconds until the server answers or closes; return what came back."""
    s = socket.create_connection(("127.0.0.1", port), timeout=30)
    s.setblocking(True)
    got = b""
    try:
        for byte in data:
            try:
                s.sendall(bytes([byte]))
            except OSError:
                break
            if stop.wait(step):
                break
            s.settimeout(0.001)
            try:
                got = s.recv(65536)
            except TimeoutError:
                continue
            finally:
                s.settimeout(30)
            break
        s.settimeout(10)
        with contextlib.suppress(OSError):
            while chunk := s.recv(65536):
                got += chunk
    finally:
        s.close()
    return got


def test_a_trickled_request_gets_408_within_the_header_deadline(lite0):
    explorer = Explorer(AppConfig(port=0, header_timeout=1.5), models={"efficientnet_lite0": lite0})
    with serving(explorer) as port:
        request = f"GET /api/options HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nX-Slow: {'a' * 40}\r\n\r\n".encode()
        start = time.monotonic()
        got = _trickle(port, request, 0.25, threading.Event())
        took = time.monotonic() - start
        assert got.startswith(b"HTTP/1.") and b" 408 " in got.split(b"\r\n")[0], got[:200]
        assert b"1.5 s" in got and took < 3.5, took
        assert _get(port, "/api/stats")[0] == 200  # still serving


def test_a_trickled_body_gets_408(lite0):
    explorer = Explorer(AppConfig(port=0, header_timeout=1.0, body_timeout=1.0), models={"efficientnet_lite0": lite0})
    with serving(explorer) as port:
        s = socket.create_connection(("127.0.0.1", port), timeout=30)
        s.sendall(f"POST /api/explain?sample=chelsea HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: image/png"
                  "\r\nContent-Length: 100\r\n\r\nabc".encode())
        start = time.monotonic()
        got = b""
        with contextlib.suppress(OSError):
            while chunk := s.recv(65536):
                got += chunk
        s.close()
        assert b" 408 " in got.split(b"\r\n")[0] and time.monotonic() - start < 3.0, got[:300]
        assert explorer.model_calls == 0


def test_half_open_connections_do_not_hold_threads(lite0):
    explorer = Explorer(AppConfig(port=0, header_timeout=1.0), models={"efficientnet_lite0": lite0})
    with serving(explorer) as port:
        before = threading.active_count()
        idle = [socket.create_connection(("127.0.0.1", port), timeout=30) for _ in range(20)]
        half = []
        for _ in range(20):  # a request line and half the headers, then nothing
            s = socket.create_connection(("127.0.0.1", port), timeout=30)
            s.sendall(b"GET /api/options HTTP/1.1\r\nHost: 127.0.0.1\r\n")
            half.append(s)
        deadline = time.monotonic() + 5
        while threading.active_count() < before + 30 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert threading.active_count() >= before + 30  # the server took them all
        time.sleep(2.0)
        assert threading.active_count() <= before + 1, threading.active_count() - before
        for s in half:  # each got a 408 and a close
            assert b" 408 " in s.recv(65536)
        for s in idle + half:
            s.close()
        assert _get(port, "/api/stats")[0] == 200


# item 7: /api/var and /api/maps through the job queue, answers bounded


@pytest.mark.parametrize("endpoint", ["var", "maps"])
def test_var_and_maps_go_through_the_job_queue(explained, monkeypatch, endpoint):
    port, explorer, key = explained
    monkeypatch.setattr(explorer, "jobs", type(explorer.jobs)(1, 0))
    release = threading.Event()
    refined = explorer.refined

    def slow_refined(request):
        release.wait(30)
        return refined(request)

    monkeypatch.setattr(explorer, "refined", slow_refined)
    results = []

    def call(i):
        results.append(_get(port, f"/api/{endpoint}?key={key}&tau=0.{i + 1}")[0])

    threads = [threading.Thread(target=call, args=(i,)) for i in range(6)]
    threads[0].start()
    end = time.monotonic() + 10
    while not explorer.jobs.running and time.monotonic() < end:
        time.sleep(0.02)
    for t in threads[1:]:
        t.start()
    for t in threads[1:]:
        t.join(30)
    release.set()
    threads[0].join(60)
    assert sorted(results) == [200, 503, 503, 503, 503, 503], results


def test_var_and_maps_answers_are_bounded(explained, monkeypatch):
    port, explorer, key = explained
    monkeypatch.setattr(explorer, "config", AppConfig(port=0, max_answer_mb=0.05))
    for path in (f"/api/var?key={key}", f"/api/maps?key={key}"):
        status, _, body = _get(port, path)
        message = json.loads(body)["error"]
        assert status == 422 and "0.05 MB" in message and "MB" in message, (path, message)


# item 8: an absolute-form target is served when its host is one this server answers to


def test_an_absolute_form_target_of_this_host_is_served(explained):
    port = explained[0]
    for target, status in ((f"http://127.0.0.1:{port}/api/options", 200), ("http://evil.example/api/options", 400),
                           ("//evil.example/api/options", 404)):  # a path (http.server folds the slashes)
        s = socket.create_connection(("127.0.0.1", port), timeout=30)
        s.sendall(f"GET {target} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n".encode())
        got = b""
        while chunk := s.recv(65536):
            got += chunk
        s.close()
        assert got.split(b"\r\n")[0].split()[1] == str(status).encode(), (target, got[:200])
