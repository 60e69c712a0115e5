"""The explorer's logic and HTTP API: cache bound, upload limits, VAR controls without model calls."""

import io
import json
import threading
import time
import urllib.error
import urllib.request

import numpy as np
import pytest
from PIL import Image

from attrdist.app import AppConfig, Explorer, LRUCache, make_server
from attrdist.app.server import UserError


def test_lru_cache_is_bounded():
    c = LRUCache(2)
    c.put("a", 1)
    c.put("b", 2)
    assert c.get("a") == 1  # a is now the most recent
    c.put("c", 3)
    assert len(c) == 2 and "b" not in c and c.get("a") == 1 and c.get("c") == 3
    with pytest.raises(ValueError):
        LRUCache(0)


@pytest.fixture(scope="module")
def server(lite0):
    explorer = Explorer(AppConfig(port=0, max_upload_mb=0.05, cache_size=2))
    explorer._models["efficientnet_lite0"] = lite0
    explorer._model_locks["efficientnet_lite0"] = threading.Lock()
    srv = make_server(explorer.config, explorer)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{srv.server_address[1]}", explorer
    srv.shutdown()
    srv.server_close()


def call(url, data=None, method=None):
    req = urllib.request.Request(url, data=data, method=method or ("POST" if data is not None else "GET"))
    try:
        with urllib.request.urlopen(req, timeout=300) as r:
            return r.status, r.read(), r.headers.get("Content-Type")
    except urllib.error.HTTPError as err:
        return err.code, err.read(), err.headers.get("Content-Type")


def png_bytes(size=(64, 48)):
    buf = io.BytesIO()
    Image.new("RGB", size, (200, 30, 30)).save(buf, format="PNG")
    return buf.getvalue()


def test_binds_localhost_by_default():
    assert AppConfig().host == "127.0.0.1"


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
    assert len(a["panels"]["gradcam"]["var"]) == 4 and b["config"]["tau"] == 0.2
    # the same explain request again is served from the cache
    call(f"{base}/api/explain?sample=coffee&methods=gradcam,input_x_gradient", data=b"")
    assert explorer.model_calls == calls


def test_downloads_match_explain_formats(server):
    base, _ = server
    key = json.loads(call(f"{base}/api/explain?sample=rocket&methods=gradcam", data=b"")[1])["key"]
    status, body, ctype = call(f"{base}/api/figure?key={key}&preset=paper")
    assert status == 200 and ctype == "image/png" and Image.open(io.BytesIO(body)).size[0] > 100
    status, body, _ = call(f"{base}/api/maps?key={key}")
    arrays = np.load(io.BytesIO(body))
    assert {"maps_gradcam", "q_gradcam", "refined_gradcam", "classes", "image"} <= set(arrays.files)


def test_upload_limits_and_non_images(server):
    base, _ = server
    status, body, _ = call(f"{base}/api/explain?methods=gradcam", data=b"this is not an image")
    assert status == 400 and "not an image" in json.loads(body)["error"]
    status, body, _ = call(f"{base}/api/explain?methods=gradcam", data=png_bytes((2000, 2000)) + b"\0" * 60_000)
    assert status == 413 and "limit" in json.loads(body)["error"]
    status, body, _ = call(f"{base}/api/explain?methods=gradcam", data=png_bytes())
    assert status == 200
    status, body, _ = call(f"{base}/api/explain?methods=nope&sample=coffee", data=b"")
    assert status == 400 and "unknown method" in json.loads(body)["error"]
    status, body, _ = call(f"{base}/api/var?key=missing")
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
        start = time.perf_counter()
        status, _, _ = call(f"{base}/api/options")
        assert status == 200 and time.perf_counter() - start < 5
        assert slow.is_alive()
    finally:
        lock.release()
    slow.join(300)


def test_explorer_errors():
    ex = Explorer(AppConfig(port=0))
    with pytest.raises(UserError, match="upload an image"):
        ex.explain(None, None, "efficientnet_lite0", ["gradcam"], "top3+worst", None)
    with pytest.raises(UserError, match="no sample"):
        ex.explain(None, "moon", "efficientnet_lite0", ["gradcam"], "top3+worst", None)
