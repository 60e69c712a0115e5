"""The explorer's logic and HTTP API: only configured models, 4xx for everything a client gets wrong (a seeded
fuzz of a few hundred malformed requests), readable 413s, bounded cache and jobs, identical results under 16
concurrent requests, VAR controls without model calls."""

import contextlib
import http.client
import io
import json
import random
import threading
import time
import urllib.error
import urllib.request

import numpy as np
import pytest
import torch
from PIL import Image

from attrdist.app import AppConfig, ExplainRequest, Explorer, LRUCache, UserError, make_server


def test_lru_cache_is_bounded():
    c = LRUCache(2)
    c.put("a", 1)
    c.put("b", 2)
    assert c.get("a") == 1  # a is now the most recent
    c.put("c", 3)
    assert len(c) == 2 and "b" not in c and c.get("a") == 1 and c.get("c") == 3
    with pytest.raises(ValueError):
        LRUCache(0)


def start(explorer):
    srv = make_server(explorer.config, explorer)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    return srv, f"http://127.0.0.1:{srv.server_address[1]}"


@pytest.fixture(scope="module")
def server(lite0):
    explorer = Explorer(AppConfig(port=0, max_upload_mb=0.05, max_megapixels=1.0, cache_size=2),
                        models={"efficientnet_lite0": lite0})
    srv, url = start(explorer)
    yield url, explorer
    srv.shutdown()
    srv.server_close()


def call(url, data=None, method=None, headers=None):
    """A request as the page sends it (uploads as application/octet-stream), with ``headers`` on top."""
    upload = {"Content-Type": "application/octet-stream"} if data is not None else {}
    req = urllib.request.Request(url, data=data, method=method or ("POST" if data is not None else "GET"),
                                 headers={**upload, **(headers or {})})
    try:
        with urllib.request.urlopen(req, timeout=300) as r:
            return r.status, r.read(), r.headers.get("Content-Type")
    except urllib.error.HTTPError as err:
        return err.code, err.read(), err.headers.get("Content-Type")


def png_bytes(size=(64, 48), noise=False):
    buf = io.BytesIO()
    arr = np.random.default_rng(0).integers(0, 255, (size[1], size[0], 3), dtype=np.uint8) if noise else None
    (Image.fromarray(arr) if noise else Image.new("RGB", size, (200, 30, 30))).save(buf, format="PNG")
    return buf.getvalue()


def test_binds_localhost_by_default():
    assert AppConfig().host == "127.0.0.1"


def test_requests_name_configured_models_never_paths(server, tmp_path):
    base, explorer = server
    evil = tmp_path / "evil.pt"
    torch.save({"not": "a model"}, evil)
    for model in ("../../etc/passwd", str(evil), "torchvision:resnet50", "timm:vit_tiny_patch16_224", "%2e%2e"):
        status, body, ctype = call(f"{base}/api/explain?model={model}&sample=chelsea", data=b"")
        assert status == 400 and ctype == "application/json", (model, status, body)
        assert "this explorer offers efficientnet_lite0" in json.loads(body)["error"]
    assert set(explorer._models) == {"efficientnet_lite0"}


def test_pickled_checkpoints_need_the_command_line_flag(tmp_path, tiny_cnn):
    from attrdist.models import UntrustedCheckpointError, load_model

    path = tmp_path / "whole_model.pt"
    torch.save(tiny_cnn, path)  # a pickled module: loading it runs code from the file
    with pytest.raises(UntrustedCheckpointError, match="--trust-checkpoint"):
        load_model(str(path))
    assert load_model(str(path), trust_checkpoint=True).model(torch.zeros(1, 3, 8, 8)).shape == (1, 10)
    ex = Explorer(AppConfig(models=(str(path),)))
    with pytest.raises(UntrustedCheckpointError):
        ex.model(str(path))


def test_var_controls_need_no_model_call(server):
    base, explorer = server
    status, body, _ = call(f"{base}/api/explain?sample=coffee&methods=gradcam,input_x_gradient", data=b"")
    assert status == 200, body
    res = json.loads(body)
    calls = explorer.model_calls
    a = json.loads(call(f"{base}/api/var?key={res['key']}&preset=paper")[1])
    b = json.loads(call(f"{base}/api/var?key={res['key']}&preset=paper&temperatures=0.01&tau=0.2")[1])
    assert explorer.model_calls == calls  # only the VAR step ran
    assert a["panels"]["gradcam"]["var"] != b["panels"]["gradcam"]["var"]
    assert a["panels"]["gradcam"]["vanilla"] == b["panels"]["gradcam"]["vanilla"]
    assert len(a["panels"]["gradcam"]["var"]["panels"]) == 4 and b["config"]["tau"] == 0.2
    assert a["panels"]["gradcam"]["var"]["scale"]["max"] > 0 and a["image"].startswith("data:image/png")
    other = res["classes"][2]["index"]  # explain another class of the set: no model call either
    c = json.loads(call(f"{base}/api/var?key={res['key']}&target={other}")[1])
    assert c["target"] == other and explorer.model_calls == calls
    call(f"{base}/api/explain?sample=coffee&methods=gradcam,input_x_gradient", data=b"")
    assert explorer.model_calls == calls  # the same explain request again is served from the cache


def test_downloads_match_explain_formats(server):
    base, _ = server
    key = json.loads(call(f"{base}/api/explain?sample=rocket&methods=gradcam", data=b"")[1])["key"]
    status, body, ctype = call(f"{base}/api/figure?key={key}&preset=paper")
    assert status == 200 and ctype == "image/png" and Image.open(io.BytesIO(body)).size[0] > 100
    status, body, ctype = call(f"{base}/api/figure?key={key}&format=pdf")
    assert status == 200 and ctype == "application/pdf" and body.startswith(b"%PDF")
    status, body, _ = call(f"{base}/api/maps?key={key}")
    arrays = np.load(io.BytesIO(body))
    assert {"maps_gradcam", "q_gradcam", "refined_gradcam", "classes", "image"} <= set(arrays.files)


def test_upload_limits_and_non_images(server):
    base, _ = server
    status, body, _ = call(f"{base}/api/explain?methods=gradcam", data=b"this is not an image")
    assert status == 400 and "not an image" in json.loads(body)["error"]
    status, body, _ = call(f"{base}/api/explain?methods=gradcam", data=png_bytes((2000, 2000)) + b"\0" * 60_000)
    assert status == 413 and "limit" in json.loads(body)["error"]  # urllib reads the 413 and its message
    status, body, _ = call(f"{base}/api/explain?methods=gradcam", data=png_bytes((1200, 1000)))
    assert status == 400 and "megapixels" in json.loads(body)["error"]  # refused from the header
    bomb = io.BytesIO()
    Image.new("1", (30000, 30000)).save(bomb, format="PNG")  # a few kB that decode to 900 megapixels
    status, body, _ = call(f"{base}/api/explain?methods=gradcam", data=bomb.getvalue())
    assert status in (400, 413) and json.loads(body)["error"]
    status, body, _ = call(f"{base}/api/explain?methods=gradcam", data=png_bytes()[:40])
    assert status == 400 and "not an image" in json.loads(body)["error"]
    status, body, _ = call(f"{base}/api/explain?methods=gradcam", data=png_bytes())
    assert status == 200
    status, body, _ = call(f"{base}/api/explain?methods=nope&sample=coffee", data=b"")
    assert status == 400 and "inapplicable method" in json.loads(body)["error"]
    status, body, _ = call(f"{base}/api/explain?methods=rollout&sample=coffee", data=b"")
    assert status == 400 and "gradcam" in json.loads(body)["error"]  # a ViT method on a CNN
    status, body, _ = call(f"{base}/api/var?key={'0' * 24}")
    assert status == 404 and "Explain again" in json.loads(body)["error"]


def test_cache_bound_evicts_oldest(server):
    base, explorer = server
    keys = [json.loads(call(f"{base}/api/explain?sample={s}&methods=gradcam", data=b"")[1])["key"]
            for s in ("chelsea", "coffee", "rocket")]
    assert len(explorer.cache) == 2 and keys[0] not in explorer.cache


def test_slow_request_does_not_block_others(server):
    base, explorer = server
    lock = explorer._model_locks["efficientnet_lite0"]
    lock.acquire()  # an attribution in progress holds the model
    try:
        slow = threading.Thread(target=call, args=(f"{base}/api/explain?sample=camera&methods=lrp",),
                                kwargs={"data": b""})
        slow.start()
        time.sleep(0.3)
        start_t = time.perf_counter()
        status, _, _ = call(f"{base}/api/options")
        assert status == 200 and time.perf_counter() - start_t < 5
        assert slow.is_alive()
    finally:
        lock.release()
    slow.join(300)


@contextlib.contextmanager
def only_worker_busy(explorer, base):
    """An explorer with one worker whose job is held (its model lock taken) for the duration of the block."""
    lock = explorer._model_locks["efficientnet_lite0"]
    lock.acquire()
    first = threading.Thread(target=call, args=(f"{base}/api/explain?sample=camera&methods=gradcam",),
                             kwargs={"data": b""})
    try:
        first.start()
        for _ in range(100):  # the first job holds the only worker
            if explorer.jobs.running:
                break
            time.sleep(0.05)
        yield
    finally:
        lock.release()
        first.join(120)


def test_full_queue_answers_503_with_retry_after(lite0):
    explorer = Explorer(AppConfig(port=0, workers=1, queue=0), models={"efficientnet_lite0": lite0})
    srv, base = start(explorer)
    with only_worker_busy(explorer, base):
        req = urllib.request.Request(f"{base}/api/explain?sample=coffee&methods=gradcam", data=b"", method="POST",
                                     headers={"Content-Type": "application/octet-stream"})
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(req, timeout=60)
        assert err.value.code == 503 and err.value.headers["Retry-After"] == "5"
        assert "busy" in json.loads(err.value.read())["error"]
    srv.shutdown()
    srv.server_close()


def test_concurrent_explains_equal_sequential(server):
    """16 concurrent explains of the sample photo: all 200, one computation, results identical to sequential ones."""
    base, explorer = server
    explorer.cache._data.clear()
    calls = explorer.model_calls
    url = f"{base}/api/explain?sample=chelsea&methods=gradcam,gradient&classes=top2%2Bworst"
    results = [None] * 16

    def go(i):
        results[i] = call(url, data=b"")

    threads = [threading.Thread(target=go, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    assert all(r[0] == 200 for r in results), [r[:2] for r in results if r[0] != 200]
    assert len({r[1] for r in results}) == 1 and explorer.model_calls == calls + 1  # identical jobs shared one run
    key = json.loads(results[0][1])["key"]
    concurrent_maps = call(f"{base}/api/maps?key={key}")[1]
    explorer.cache._data.clear()
    again = call(url, data=b"")
    assert again[1] == results[0][1]
    for name in ("maps_gradcam", "refined_gradient"):
        sequential = np.load(io.BytesIO(call(f"{base}/api/maps?key={key}")[1]))[name]
        np.testing.assert_array_equal(np.load(io.BytesIO(concurrent_maps))[name], sequential)


def raw_request(base, payload, read=True):
    host, port = base.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=60)
    conn.sock = __import__("socket").create_connection((host, int(port)), timeout=60)
    conn.sock.sendall(payload)
    if not read:
        conn.close()
        return None
    resp = http.client.HTTPResponse(conn.sock, method="GET")
    try:
        resp.begin()
        return resp.status, resp.read()
    finally:
        conn.close()


def test_fuzz_malformed_requests(server):
    """A few hundred seeded malformed requests: never a 5xx, always JSON with a message, the server stays up and
    its memory bounded (the cache never holds more than its size)."""
    base, explorer = server
    rng = random.Random(1234)
    junk = ["", "-1", "1e309", "nan", "inf", "0x10", "../../etc/passwd", "/etc/passwd", "%00", "a" * 3000, "1,2,",
            ",,,", "top", "top99999", "best", "💥", "<script>alert(1)</script>", "null", "[]", "{}", "true", "0",
            "999999999999999999999", "-0.0", "1;rm -rf /", "file:///etc/passwd", "\\\\host\\share", "%2e%2e%2f"]
    params = ["model", "methods", "classes", "target", "sample", "key", "preset", "temperatures", "tau", "magnitude",
              "normalize", "sign", "format", "channels", "x"]
    paths = ["/api/explain", "/api/var", "/api/figure", "/api/maps", "/api/options", "/api/stats", "/", "/nope",
             "/api/../../etc/passwd", "/api/explain/../var", "/%2e%2e/etc/passwd", "//etc/passwd"]
    statuses = []
    for _ in range(300):
        path = rng.choice(paths)
        query = "&".join(f"{rng.choice(params)}={urllib.parse.quote(rng.choice(junk))}"
                         for _ in range(rng.randint(0, 5)))
        if rng.random() < 0.15 and path.startswith("/api/var"):  # a valid key with bad parameters
            query += "&key=" + (next(iter(explorer.cache._data), "0" * 24))
        method = rng.choice(["GET", "POST", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD", "BREW"])
        body = None
        if method in ("POST", "PUT", "PATCH"):
            body = rng.choice([b"", bytes(rng.getrandbits(8) for _ in range(rng.randint(1, 3000))),
                               png_bytes()[: rng.randint(1, 300)], b"GIF89a" + b"\0" * 50])
        req = urllib.request.Request(base + path + ("?" + query if query else ""), data=body, method=method)
        try:
            with urllib.request.urlopen(req, timeout=120) as r:
                status, text = r.status, r.read()
        except urllib.error.HTTPError as err:
            status, text = err.code, err.read()
        statuses.append(status)
        assert status < 500, (method, path, query, status, text[:300])
        if status >= 400 and method != "HEAD":
            assert json.loads(text)["error"], (method, path, query)
        assert len(explorer.cache) <= explorer.config.cache_size
    # raw protocol abuse: huge headers, a bad request line, a lying Content-Length, chunked bodies
    for payload in (b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 70000 + b"\r\n\r\n",
                    b"NONSENSE\r\n\r\n",
                    b"GET /api/options HTTP/1.1\r\n" + b"".join(b"X-%d: 1\r\n" % i for i in range(150)) + b"\r\n",
                    b"POST /api/explain?sample=chelsea HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n",
                    b"POST /api/explain HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n",
                    b"POST /api/explain HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                    b"5\r\nhello\r\n0\r\n\r\n"):
        status, text = raw_request(base, payload)
        statuses.append(status)
        assert 400 <= status < 500, (payload[:60], status, text[:200])
    raw_request(base, b"POST /api/explain HTTP/1.1\r\nHost: x\r\nContent-Length: 40000\r\n\r\nshort", read=False)
    assert call(f"{base}/api/options")[0] == 200  # still serving
    assert len(set(statuses)) > 3


def test_explorer_errors():
    with pytest.raises(UserError, match="upload an image"):
        ExplainRequest.parse({"methods": "gradcam"})
    with pytest.raises(UserError, match="no sample"):
        ExplainRequest.parse({"sample": "moon", "methods": "gradcam"})
    with pytest.raises(ValueError, match="at least one model"):
        AppConfig(models=())


@pytest.mark.parametrize("field", ["max_upload_mb", "max_megapixels", "header_timeout", "body_timeout",
                                   "max_answer_mb"])
@pytest.mark.parametrize("value", [float("inf"), float("nan"), 0.0])
def test_operator_limits_must_be_finite(field, value):
    with pytest.raises(ValueError, match=f"{field} must be a positive, finite number"):
        AppConfig(**{field: value})


def test_other_sites_cannot_use_the_explorer(server):
    """Issue 22, item 4: DNS rebinding (a foreign Host), cross-site POSTs (Origin, Sec-Fetch-Site, the content types
    a form or a no-CORS fetch can send) are refused before any model call, and result keys cannot be guessed."""
    base, explorer = server
    port = base.rsplit(":", 1)[1]
    url = f"{base}/api/explain?sample=coffee&methods=gradcam"
    calls = explorer.model_calls
    for headers in ({"Host": "evil.example"}, {"Host": f"evil.example:{port}"}):
        status, body, _ = call(f"{base}/api/options", headers=headers)
        assert status == 403 and "does not answer to host" in json.loads(body)["error"]
        assert call(url, data=b"", headers=headers)[0] == 403
    for headers in ({"Origin": "http://evil.example"}, {"Sec-Fetch-Site": "cross-site"},
                    {"Content-Type": "application/x-www-form-urlencoded"}, {"Content-Type": "text/plain"},
                    {"Content-Type": "multipart/form-data; boundary=x"}):
        status, body, _ = call(url, data=png_bytes(), headers=headers)
        assert status in (403, 415) and json.loads(body)["error"], headers
    assert explorer.model_calls == calls  # nothing reached the model
    for headers in ({"Host": f"localhost:{port}"}, {"Host": f"127.0.0.1:{port}"}, {"Origin": base},
                    {"Sec-Fetch-Site": "same-origin"}, {"Content-Type": "image/png"}):
        assert call(url, data=b"", headers=headers)[0] == 200, headers
    # keys: a server's secret makes them unguessable (the same request on another server gets another key)
    key = json.loads(call(url, data=b"")[1])["key"]
    other = Explorer(AppConfig(port=0), models={"efficientnet_lite0": explorer.model("efficientnet_lite0")})
    assert other.explain(ExplainRequest.parse({"sample": "coffee", "methods": "gradcam"}))["key"] != key


def test_allowed_hosts_option():
    from attrdist.app.server import _local_or_ip

    assert AppConfig(allowed_hosts="Lab.example, box").allowed_hosts == ("lab.example", "box")
    assert all(_local_or_ip(h) for h in ("localhost", "127.0.0.1", "[::1]", "10.0.0.7", "app.localhost"))
    assert not any(_local_or_ip(h) for h in ("evil.example", "localhost.evil.example", "127.0.0.1.nip.io"))


def test_admission_before_decode_and_bounded_figures(lite0, monkeypatch):
    """Issue 22, item 3: an upload answered 503 is never decoded; figures wait in the same queue as attributions
    and are bounded in size."""
    import attrdist.app.explorer as explorer_module

    decoded = []
    real = explorer_module.read_image_bytes
    monkeypatch.setattr(explorer_module, "read_image_bytes", lambda *a, **k: decoded.append(1) or real(*a, **k))
    explorer = Explorer(AppConfig(port=0, workers=1, queue=0), models={"efficientnet_lite0": lite0})
    srv, base = start(explorer)
    key = json.loads(call(f"{base}/api/explain?sample=coffee&methods=gradcam", data=b"")[1])["key"]
    with only_worker_busy(explorer, base):
        status, _, _ = call(f"{base}/api/explain?methods=gradcam", data=png_bytes((300, 200)))
        assert status == 503 and decoded == []  # refused before the upload was decoded
        status, body, _ = call(f"{base}/api/figure?key={key}")
        assert status == 503 and "busy" in json.loads(body)["error"]  # a figure waits like an attribution
    assert call(f"{base}/api/figure?key={key}")[0] == 200
    assert call(f"{base}/api/explain?methods=gradcam", data=png_bytes((300, 200)))[0] == 200 and decoded == [1]
    big = json.loads(call(f"{base}/api/explain?sample=coffee&methods=gradcam,gradient&classes=top30",
                          data=b"")[1])["key"]
    status, body, _ = call(f"{base}/api/figure?key={big}")
    assert status == 400 and "at most 48" in json.loads(body)["error"]
    assert call(f"{base}/api/maps?key={big}")[0] == 200  # the arrays are still there
    srv.shutdown()
    srv.server_close()


def test_the_margin_control_sets_the_margin_that_applies(server):
    """Issue 22, item 12: under authors-code with a ranked class set the preset's tau_ranked used to win, so the
    page's tau control did nothing; it sets the margin that applies."""
    base, _ = server
    key = json.loads(call(f"{base}/api/explain?sample=coffee&methods=gradient", data=b"")[1])["key"]
    maps = []
    for tau in ("0", "0.4"):
        status, body, _ = call(f"{base}/api/maps?key={key}&preset=authors-code&tau={tau}")
        assert status == 200
        maps.append(np.load(io.BytesIO(body))["refined_gradient"])
    assert (maps[1] != 0).sum() < (maps[0] != 0).sum()  # a larger margin keeps fewer pixels
