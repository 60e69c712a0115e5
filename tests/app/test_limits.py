"""Bounded work per request: a time limit the operator sets, and a request stopped when its client leaves
(waiting for a worker or running), without disturbing the next request."""

import copy
import json
import socket
import threading
import time

import pytest

from attrdist.app import AppConfig, Explorer, make_server
from attrdist.models import LoadedModel

SLOW = "guided_backprop,input_x_gradient,integrated_gradients"


class _Slow:
    """A model copy whose every forward sleeps ``delay`` seconds and is counted."""

    def __init__(self, lite0, delay=0.25):
        self.forwards = 0
        model = copy.deepcopy(lite0.model)

        def hook(module, args):
            self.forwards += 1
            time.sleep(delay)

        model.register_forward_pre_hook(hook)
        self.lm = LoadedModel(model=model, preprocess=lite0.preprocess, class_names=lite0.class_names,
                              name="slow", weights="test")


def _serve(explorer):
    srv = make_server(explorer.config, explorer)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv, srv.server_address[1]


def _post(port, query):
    """Send an explain request on a raw socket (returned open: closing it is the client leaving)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=30)
    s.sendall(f"POST /api/explain?{query} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
              "Content-Type: application/octet-stream\r\nContent-Length: 0\r\n\r\n".encode())
    return s


def _answer(s):
    data = b""
    while chunk := s.recv(65536):
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), json.loads(body)


def _until(predicate, timeout=10.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.05)
    return False


@pytest.fixture
def slow(lite0):
    return _Slow(lite0)


def test_a_request_past_the_time_limit_stops_with_a_clear_422(slow):
    explorer = Explorer(AppConfig(port=0, request_timeout=0.6, models=("slow",)), models={"slow": slow.lm})
    srv, port = _serve(explorer)
    try:
        start = time.monotonic()
        status, body = _answer(_post(port, f"model=slow&sample=chelsea&methods={SLOW}&classes=top2"))
        took = time.monotonic() - start
        assert status == 422 and "--request-timeout" in body["error"] and "0.6 s" in body["error"], body
        assert took < 3.0, took  # stopped at the next forward, not after all three methods
        assert explorer.stats()["stopped"] == {"timeout": 1, "disconnected": 0} and explorer.model_calls == 0
        assert len(explorer.cache) == 0  # nothing half-done is cached
    finally:
        srv.shutdown()
        srv.server_close()


def test_a_request_whose_client_leaves_stops_running(slow):
    explorer = Explorer(AppConfig(port=0, request_timeout=0, models=("slow",)), models={"slow": slow.lm})
    srv, port = _serve(explorer)
    try:
        s = _post(port, f"model=slow&sample=chelsea&methods={SLOW}&classes=top2")
        assert _until(lambda: slow.forwards >= 1)
        s.close()  # the client gives up
        assert _until(lambda: explorer.stats()["stopped"]["disconnected"] == 1), explorer.stats()
        seen = slow.forwards
        time.sleep(1.0)
        assert slow.forwards == seen  # no forward after it stopped
        assert explorer.stats()["running"] == 0 and explorer.model_calls == 0
        # the server still answers, and the same request from a client that waits completes
        explorer.config = AppConfig(port=0, request_timeout=60, models=("slow",))
        status, body = _answer(_post(port, "model=slow&sample=chelsea&methods=input_x_gradient&classes=top2"))
        assert status == 200 and len(body["classes"]) == 2 and explorer.model_calls == 1
    finally:
        srv.shutdown()
        srv.server_close()


def test_a_waiting_request_whose_client_leaves_frees_its_place(slow):
    explorer = Explorer(AppConfig(port=0, request_timeout=0, workers=1, queue=1, models=("slow",)),
                        models={"slow": slow.lm})
    srv, port = _serve(explorer)
    try:
        first = _post(port, f"model=slow&sample=chelsea&methods={SLOW}&classes=top2")
        assert _until(lambda: explorer.stats()["running"] == 1)
        second = _post(port, "model=slow&sample=coffee&methods=input_x_gradient&classes=top2")
        assert _until(lambda: explorer.stats()["waiting"] == 1)
        second.close()
        assert _until(lambda: explorer.stats()["waiting"] == 0 and explorer.stats()["stopped"]["disconnected"] == 1)
        first.close()
        assert _until(lambda: explorer.stats()["running"] == 0 and explorer.stats()["stopped"]["disconnected"] == 2)
        assert explorer.model_calls == 0
    finally:
        srv.shutdown()
        srv.server_close()


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -1.0])
def test_request_timeout_must_be_finite_and_not_negative(value):
    with pytest.raises(ValueError, match="request_timeout"):
        AppConfig(request_timeout=value)


def test_the_deadline_is_the_requests_own_object():
    """Issue 30, item 7: the time limit travels as an object the request owns, not through thread-local state; its
    hooks are removed after the block, also after an exception."""
    import pathlib

    import torch

    from attrdist.app import Deadline
    from attrdist.app.errors import TimeUp

    src = pathlib.Path(__import__("attrdist.app", fromlist=["x"]).__file__).parent
    assert not [p.name for p in src.glob("*.py") if "threading.local" in p.read_text()]
    Deadline().check()  # no limit
    late = Deadline(0.01)
    time.sleep(0.02)
    with pytest.raises(TimeUp, match="0.01 s"):
        late.check()
    model = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.ReLU())
    with pytest.raises(TimeUp), late.watch(model):
        model(torch.zeros(1, 2))
    assert all(not m._forward_pre_hooks for m in model.modules())
    with Deadline(60).watch(model):
        model(torch.zeros(1, 2))  # in time: runs
        other = Deadline(0.01)  # another request's deadline does not stop this one's forwards
        time.sleep(0.02)
        model(torch.zeros(1, 2))
    assert all(not m._forward_pre_hooks for m in model.modules())
    del other
