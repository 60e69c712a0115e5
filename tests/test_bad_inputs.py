"""Every bad input is a clear answer naming it, and changes nothing else (issue 22's suite).

Two tables, run case by case:

* **HTTP**: each request goes to one explorer (EfficientNet-Lite0, tight limits) as raw bytes; the answer must be
  its 4xx with a JSON message naming the problem, no model call, nothing new in the cache, no file written in the
  server's folder, and the server still answering.
* **Command line**: each case runs ``attrdist`` in-process and must fail (exit status 2, or 1 for an input
  file) with one ``error:`` line naming the
  input and no traceback, and leave its folder as it was.

The catch-all (an unforeseen error) also prints one line, with the traceback only under ``ATTRDIST_DEBUG=1``.
Functional checks of the same protections (admission before decode, the margin control, time limits) live beside
the code they test: tests/app/, tests/data/test_images.py, tests/test_config_safety.py.
"""

import errno
import http.client
import io
import json
import os
import pickle
import socket
import struct
import threading
import warnings
from pathlib import Path

import pytest
from PIL import Image

from attrdist.cli import main


def _png(size=(64, 48)):
    buf = io.BytesIO()
    Image.new("RGB", size, (200, 30, 30)).save(buf, format="PNG")
    return buf.getvalue()


def _bilevel_png(width, height):
    """A 1-bit PNG of ``width x height``: a few kB that would decode to that many pixels."""
    buf = io.BytesIO()
    Image.new("1", (width, height)).save(buf, format="PNG")
    return buf.getvalue()


def _ico_holding_a_big_png():
    """An ICO whose one entry is a PNG of 13000 x 13000 (Pillow decodes ICO frames inside Image.open)."""
    body = _bilevel_png(13000, 13000)
    return struct.pack("<HHH", 0, 1, 1) + struct.pack("<BBBBHHII", 0, 0, 0, 0, 1, 32, len(body), 22) + body


def _form(body, ctype, **extra):
    return {"body": body, "headers": {"Content-Type": ctype, **extra}}


SAMPLE = "/api/explain?sample=chelsea&methods=gradcam"

# name: (method, path, request options, expected status, words the message must contain)
HTTP = {
    # item 4: other hosts and other sites
    "host of another site": ("GET", "/api/options", {"headers": {"Host": "evil.example"}}, 403, "host"),
    "rebinding host on a port": ("GET", "/", {"headers": {"Host": "evil.example:7860"}}, 403, "host"),
    "cross-origin post": ("POST", SAMPLE, _form(b"", "application/octet-stream", Origin="http://evil.example"),
                          403, "cross-origin"),
    "cross-site fetch": ("POST", SAMPLE, _form(b"", "application/octet-stream", **{"Sec-Fetch-Site": "cross-site"}),
                         403, "cross-site"),
    "form post": ("POST", SAMPLE, _form(b"a=1", "application/x-www-form-urlencoded"), 415, "octet-stream"),
    "text/plain post": ("POST", SAMPLE, _form(_png(), "text/plain"), 415, "octet-stream"),
    "multipart post": ("POST", SAMPLE, _form(b"--x--", "multipart/form-data; boundary=x"), 415, "octet-stream"),
    "post without a type": ("POST", SAMPLE, {"body": b"", "headers": {}}, 415, "no type"),
    # item 14: strict framing
    "content-length with underscores": ("POST", SAMPLE, {"body": b"0123456789", "headers": {
        "Content-Type": "application/octet-stream", "Content-Length": "1_0"}}, 400, "Content-Length"),
    "two content-lengths": ("POST", SAMPLE, {"body": b"0123456789", "headers": {
        "Content-Type": "application/octet-stream", "Content-Length": ["10", "3"]}}, 400, "Content-Length"),
    "negative content-length": ("POST", SAMPLE, {"body": b"", "headers": {
        "Content-Type": "application/octet-stream", "Content-Length": "-5"}}, 400, "Content-Length"),
    "chunked upload": ("POST", SAMPLE, {"body": b"5\r\nhello\r\n0\r\n\r\n", "headers": {
        "Content-Type": "application/octet-stream", "Transfer-Encoding": "chunked"}}, 411, "Content-Length"),
    "body shorter than its length": ("POST", SAMPLE, {"body": b"abc", "headers": {
        "Content-Type": "application/octet-stream", "Content-Length": "40"}, "half_close": True}, 400, "ended before"),
    # items 2 and 3: images refused from their headers, before any decode
    "upload over the limit": ("POST", "/api/explain?methods=gradcam", _form(b"\0" * 60_000, "image/png"), 413,
                              "limit"),
    "not an image": ("POST", "/api/explain?methods=gradcam", _form(b"this is not an image", "image/png"), 400,
                     "not an image"),
    "truncated png": ("POST", "/api/explain?methods=gradcam", _form(_png()[:40], "image/png"), 400, "not an image"),
    "png over the megapixels": ("POST", "/api/explain?methods=gradcam", _form(_bilevel_png(1200, 1000), "image/png"),
                                400, "megapixels"),
    "png bomb": ("POST", "/api/explain?methods=gradcam", _form(_bilevel_png(15000, 15000), "image/png"), 400,
                 "megapixels"),
    "thin strip 1x900": ("POST", "/api/explain?methods=gradcam", _form(_png((900, 1)), "image/png"), 400, "100:1"),
    "ico holding a big png": ("POST", "/api/explain?methods=gradcam", _form(_ico_holding_a_big_png(), "image/x-icon"),
                              400, "format read here"),
    # what the request names: configured models, methods, classes, samples only
    "model path": ("POST", "/api/explain?model=../../etc/passwd&sample=chelsea", _form(b"", "image/png"), 400,
                   "unknown model"),
    "model from a hub": ("POST", "/api/explain?model=torchvision:resnet50&sample=chelsea", _form(b"", "image/png"),
                         400, "unknown model"),
    "unknown method": ("POST", "/api/explain?methods=nope&sample=chelsea", _form(b"", "image/png"), 400,
                       "inapplicable method"),
    "vit method on a cnn": ("POST", "/api/explain?methods=rollout&sample=chelsea", _form(b"", "image/png"), 400,
                            "gradcam"),
    "class out of range": ("POST", SAMPLE + "&classes=1,5000", _form(b"", "image/png"), 400, "does not fit"),
    "one class (K=1)": ("POST", SAMPLE + "&classes=281", _form(b"", "image/png"), 400, "K=1"),
    "duplicate classes": ("POST", SAMPLE + "&classes=2,2,3", _form(b"", "image/png"), 400, "duplicate"),
    "too many classes": ("POST", SAMPLE + "&classes=top999", _form(b"", "image/png"), 400, "at most 32"),
    "unknown class name": ("POST", SAMPLE + "&classes=tabby,zebrafishcat", _form(b"", "image/png"), 400,
                           "zebrafishcat"),
    # item 13: refused, never cut
    "class spec of 2000+ characters": ("POST", SAMPLE + "&classes=" + "%20" * 1994 + "281,285", _form(b"", "image/png"),
                                       400, "at most 2000"),
    "target not a number": ("POST", SAMPLE + "&target=abc", _form(b"", "image/png"), 400, "target must be an integer"),
    "target out of range": ("POST", SAMPLE + "&target=5000", _form(b"", "image/png"), 400, "outside the model's"),
    "target nan": ("POST", SAMPLE + "&target=nan", _form(b"", "image/png"), 400, "target must be an integer"),
    "unknown sample": ("POST", "/api/explain?sample=moon", _form(b"", "image/png"), 400, "no sample"),
    "neither image nor sample": ("POST", "/api/explain", _form(b"", "image/png"), 400, "upload an image"),
    # the VAR controls (a valid key is filled in for {key})
    "malformed key": ("GET", "/api/var?key=../../x", {}, 400, "key must be"),
    "key of nothing cached": ("GET", "/api/var?key=" + "0" * 24, {}, 404, "Explain again"),
    "unknown preset": ("GET", "/api/var?key={key}&preset=nope", {}, 400, "unknown preset"),
    "tau not a number": ("GET", "/api/var?key={key}&tau=abc", {}, 400, "tau must be a number"),
    "tau out of range": ("GET", "/api/var?key={key}&tau=2", {}, 400, "tau must lie in"),
    "temperatures not numbers": ("GET", "/api/var?key={key}&temperatures=1,x", {}, 400, "comma-separated"),
    "negative temperature": ("GET", "/api/var?key={key}&temperatures=-1", {}, 400, "positive"),
    "temperature nan": ("GET", "/api/var?key={key}&temperatures=nan", {}, 400, "positive"),
    "unknown magnitude": ("GET", "/api/var?key={key}&magnitude=log", {}, 400, "unknown magnitude"),
    "unknown sign": ("GET", "/api/var?key={key}&sign=rainbow", {}, 400, "unknown sign"),
    "target outside the class set": ("GET", "/api/var?key={key}&target=999", {}, 400, "not in the class set"),
    "figure format": ("GET", "/api/figure?key={key}&format=gif", {}, 400, "unknown format"),
    "maps of a malformed key": ("GET", "/api/maps?key=zz", {}, 400, "key must be"),
    # the HTTP layer itself
    "no such page": ("GET", "/nope", {}, 404, "no page"),
    "no such endpoint": ("POST", "/api/nope", _form(b"", "image/png"), 404, "no endpoint"),
    "path traversal": ("GET", "/%2e%2e/etc/passwd", {}, 404, "no page"),
    "method not allowed": ("PUT", "/", {}, 405, "not allowed"),
    "delete": ("DELETE", "/api/var", {}, 405, "not allowed"),
    "too many query fields": ("GET", "/api/var?" + "&".join(f"a{i}=1" for i in range(80)), {}, 400,
                              "too many query parameters"),
    "url too long": ("GET", "/api/var?key=" + "a" * 70_000, {}, 414, "URI"),
    "header too long": ("GET", "/api/options", {"headers": {"X-Big": "a" * 70_000}}, 431, "too long"),
    "malformed request line": ("RAW", "NONSENSE\r\n\r\n", {}, 400, "request"),
    # issue 34, item 8: one Host, one Origin, and no foreign host in an absolute-form target
    "two host headers": ("GET", "/api/options", {"headers": {"Host": ["127.0.0.1", "127.0.0.1"]}}, 400,
                         "two Host headers"),
    "absolute-form target of another host": ("GET", "http://evil.example/api/options", {}, 400, "evil.example"),
    "absolute-form post to another host": ("POST", "http://evil.example" + SAMPLE,
                                           _form(b"", "application/octet-stream"), 400, "evil.example"),
    "two origin headers": ("POST", SAMPLE, _form(b"", "application/octet-stream",
                                                 Origin=["http://127.0.0.1", "http://evil.example"]), 400,
                           "two Origin headers"),
}


def _send(port, method, path, options):
    """``method path`` as raw bytes (headers exactly as given, several values for one name allowed)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=120)
    try:
        if method == "RAW":
            s.sendall(path.encode())
        else:
            body = options.get("body")
            headers = {"Host": f"127.0.0.1:{port}", **options.get("headers", {})}
            if body is not None and "Content-Length" not in headers and "Transfer-Encoding" not in headers:
                headers["Content-Length"] = str(len(body))
            lines = [f"{method} {path} HTTP/1.1"] + [f"{k}: {v}" for k, vs in headers.items()
                                                     for v in (vs if isinstance(vs, list) else [vs])]
            s.sendall(("\r\n".join(lines) + "\r\n\r\n").encode() + (body or b""))
            if options.get("half_close"):
                s.shutdown(socket.SHUT_WR)
        response = http.client.HTTPResponse(s, method=method)
        response.begin()
        return response.status, response.read()
    finally:
        s.close()


@pytest.fixture(scope="module")
def explorer_at(lite0, tmp_path_factory):
    """An explorer with tight limits, serving from an empty folder (which must stay empty), and a valid key."""
    from attrdist.app import AppConfig, Explorer, make_server

    folder = tmp_path_factory.mktemp("served")
    cwd = os.getcwd()
    os.chdir(folder)
    explorer = Explorer(AppConfig(port=0, max_upload_mb=0.05, max_megapixels=1.0, cache_size=4),
                        models={"efficientnet_lite0": lite0})
    srv = make_server(explorer.config, explorer)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    port = srv.server_address[1]
    status, body = _send(port, "POST", SAMPLE, _form(b"", "application/octet-stream"))
    assert status == 200, body
    yield port, explorer, json.loads(body)["key"], folder
    srv.shutdown()
    srv.server_close()
    os.chdir(cwd)


@pytest.mark.parametrize("case", list(HTTP))
def test_http(case, explorer_at):
    port, explorer, key, folder = explorer_at
    method, path, options, status, words = HTTP[case]
    before = (explorer.model_calls, sorted(explorer.cache._data), sorted(os.listdir(folder)))
    got, body = _send(port, method, path.replace("{key}", key), options)
    assert got == status, (case, got, body[:300])
    message = json.loads(body)["error"]
    assert words.lower() in message.lower(), (case, message)
    assert "Traceback" not in message
    assert (explorer.model_calls, sorted(explorer.cache._data), sorted(os.listdir(folder))) == before
    assert _send(port, "GET", "/api/stats", {})[0] == 200  # still serving


def test_http_no_response_carries_nan(explorer_at):
    """Item 11: temperatures that underflow give JSON a browser can parse (no NaN, no Infinity)."""
    port, _, key, _ = explorer_at

    def refuse(token):
        raise ValueError(f"{token} is not JSON")

    status, body = _send(port, "GET", f"/api/var?key={key}&temperatures=1e-320&preset=paper", {})
    assert status in (200, 400) and json.loads(body, parse_constant=refuse) is not None


@pytest.fixture
def files(tmp_path):
    (tmp_path / "garbage.pt").write_bytes(b"garbage")
    (tmp_path / "empty.pt").write_bytes(b"")
    (tmp_path / "code.pkl").write_bytes(pickle.dumps({"a": 1}))
    (tmp_path / "afile").write_text("x")
    (tmp_path / "m1.yaml").write_text("methods: [{a: 1}]\n")
    (tmp_path / "m2.yaml").write_text("method_options: {gradcam: 5}\n")
    (tmp_path / "bomb.yaml").write_text("a: &a [x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a]\n"
                                        "c: [*b, *b, *b, *b, *b, *b, *b, *b]\n")
    (tmp_path / "list.yaml").write_text("- 1\n- 2\n")
    (tmp_path / "unknown.yaml").write_text("methodz: [gradcam]\n")
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "results.sqlite").write_bytes(b"not sqlite")
    (tmp_path / "adir").mkdir()
    (tmp_path / "notimage.jpg").write_text("plain text")
    import torch

    torch.save({"w": torch.zeros(1)}, tmp_path / "state.pt")
    with warnings.catch_warnings():  # TorchScript is deprecated in torch 2.9+, and still what users have
        warnings.simplefilter("ignore")
        torch.jit.save(torch.jit.script(torch.nn.Linear(2, 2)), str(tmp_path / "scripted.pt"))
    return tmp_path


# name: (argv, words the error line must contain)
CLI = {
    # item 9: weights files and folders
    "weights garbage": (["explain", "--weights", "{d}/garbage.pt", "--out", "{d}/o"], "garbage.pt"),
    "weights empty": (["explain", "--weights", "{d}/empty.pt", "--out", "{d}/o"], "empty.pt"),
    "weights pickle": (["explain", "--weights", "{d}/code.pkl", "--out", "{d}/o"], "code.pkl"),
    "weights missing": (["explain", "--weights", "{d}/missing.pt", "--out", "{d}/o"], "missing.pt"),
    "weights of another model": (["explain", "--weights", "{d}/state.pt", "--out", "{d}/o"], "state.pt"),
    # item 7: --weights beside a model file is an error, not ignored
    "weights with a torchscript model": (["explain", "--model", "{d}/scripted.pt", "--weights", "{d}/state.pt",
                                          "--out", "{d}/o"], "does not apply"),
    "pickled model untrusted": (["explain", "--model", "{d}/code.pkl", "--out", "{d}/o"], "code.pkl"),
    "model file missing": (["explain", "--model", "{d}/nothere.pt", "--out", "{d}/o"], "nothere.pt"),
    "model unknown": (["explain", "--model", "torchvision:resnet5000", "--out", "{d}/o"], "resnet5000"),
    "image missing": (["explain", "{d}/nothere.jpg", "--out", "{d}/o"], "nothere.jpg"),
    "image is a folder": (["explain", "{d}/adir", "--out", "{d}/o"], "adir"),
    "image not an image": (["explain", "{d}/notimage.jpg", "--out", "{d}/o"], "notimage.jpg"),
    "unknown method": (["explain", "--methods", "gradcma", "--out", "{d}/o"], "gradcam"),
    "class out of range": (["explain", "--classes", "1,5000", "--out", "{d}/o"], "5000"),
    "one class": (["explain", "--classes", "281", "--out", "{d}/o"], "K=1"),
    "unknown class name": (["explain", "--classes", "tabby,zebrafishcat", "--out", "{d}/o"], "zebrafishcat"),
    "unknown target": (["explain", "--target", "zebrafishcat", "--out", "{d}/o"], "zebrafishcat"),
    "out is a file (explain)": (["explain", "--out", "{d}/afile"], "afile"),
    "out is a file (bench)": (["bench", "localization", "--out", "{d}/afile", "--max-items", "1"],
                              "a file, not a run folder"),
    # items 6 and 9: configuration files are data
    "yaml alias bomb": (["bench", "localization", "--config", "{d}/bomb.yaml", "--out", "{d}/r0"], "aliases"),
    "config is a list": (["bench", "localization", "--config", "{d}/list.yaml", "--out", "{d}/r3"], "list.yaml"),
    "config with an unknown key": (["bench", "localization", "--config", "{d}/unknown.yaml", "--out", "{d}/r4"],
                                   "methodz"),
    "config missing": (["bench", "localization", "--config", "{d}/nothere.yaml", "--out", "{d}/r5"], "nothere.yaml"),
    "methods of mappings": (["bench", "localization", "--config", "{d}/m1.yaml", "--out", "{d}/r1"], "list[str]"),
    "method options not mappings": (["bench", "localization", "--config", "{d}/m2.yaml", "--out", "{d}/r2"],
                                    "must be dict[str, dict"),
    "unknown dataset": (["bench", "localization", "--dataset", "nope", "--out", "{d}/r6"], "nope"),
    "report of garbage": (["report", "{d}/run"], "not a readable results database"),
    "report of a file": (["report", "{d}/afile"], "no results.sqlite"),
    "report of nothing": (["report", "{d}/nothere"], "nothere"),
    # items 9 and 10: operator settings
    "serve upload 0": (["serve", "--max-upload-mb", "0"], "max_upload_mb"),
    "serve upload inf": (["serve", "--max-upload-mb", "inf"], "max_upload_mb"),
    "serve megapixels inf": (["serve", "--max-megapixels", "inf"], "max_megapixels"),
    "serve megapixels nan": (["serve", "--max-megapixels", "nan"], "max_megapixels"),
    "serve workers 0": (["serve", "--workers", "0"], "workers must be >= 1"),
    "serve port": (["serve", "--port", "99999"], "0-65535"),
    "serve timeout nan": (["serve", "--request-timeout", "nan"], "request_timeout"),
    "serve unresolvable host": (["serve", "--host", "no.such.host.invalid", "--port", "0"], "no.such.host.invalid"),
}


def _tree(folder):
    return sorted((str(p.relative_to(folder)), p.stat().st_size if p.is_file() else -1) for p in folder.rglob("*"))


@pytest.mark.parametrize("case", list(CLI))
def test_cli(case, files, capsys, monkeypatch):
    monkeypatch.delenv("ATTRDIST_DEBUG", raising=False)
    argv, expected = CLI[case]
    before = _tree(files)
    assert main([a.format(d=files) for a in argv]) in (1, 2), capsys.readouterr()
    err = capsys.readouterr().err.strip().splitlines()
    errors = [line for line in err if line.startswith("error: ")]
    assert len(errors) == 1 and expected in errors[0] and "Traceback" not in "\n".join(err), err
    assert _tree(files) == before, case  # nothing written, nothing half-made


def test_cli_failed_start_stores_nothing(tmp_path, capsys):
    """Item 8: a start that fails (an unknown model) leaves the folder free for the corrected command."""
    run = tmp_path / "run"
    assert main(["bench", "localization", "--model", "torchvision:resnet5000", "--max-items", "1",
                 "--methods", "gradcam", "--out", str(run)]) == 2
    assert not run.exists() or not any(run.iterdir())
    capsys.readouterr()
    assert main(["bench", "localization", "--max-items", "1", "--methods", "gradcam", "--out", str(run)]) == 0


def test_cli_port_in_use(capsys):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        assert main(["serve", "--port", str(port)]) == 2
    err = capsys.readouterr().err
    assert f"cannot listen on 127.0.0.1:{port}" in err and "Traceback" not in err and err.count("\n") == 1


def test_cli_trusted_model_whose_class_is_gone(tmp_path, capsys):
    """Item 9: ``--trust-checkpoint`` with a pickled model whose class cannot be imported here."""
    import sys
    import types

    import torch

    module = types.ModuleType("attrdist_gone_module")
    net = type("Net", (torch.nn.Linear,), {"__module__": "attrdist_gone_module"})
    module.Net = net
    sys.modules["attrdist_gone_module"] = module
    try:
        torch.save(net(3, 2), tmp_path / "gone.pt")
    finally:
        del sys.modules["attrdist_gone_module"]
    assert main(["explain", "--model", str(tmp_path / "gone.pt"), "--trust-checkpoint", "--out",
                 str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "gone.pt" in err and "attrdist_gone_module" in err and "\n" not in err


@pytest.mark.parametrize(("failure", "words"), [
    (OSError(errno.EROFS, "Read-only file system"), "Read-only file system"),
    (OSError(errno.ENOSPC, "No space left on device"), "No space left on device"),
])
def test_cli_read_only_or_full_disk(tmp_path, capsys, monkeypatch, failure, words):
    """Item 9: a folder that cannot be written (read-only, full) is one line naming it, for bench and report."""
    run = tmp_path / "run"
    failure.filename = str(run)

    def refuse(self, *args, **kwargs):
        raise failure

    monkeypatch.setattr(Path, "mkdir", refuse)
    assert main(["bench", "localization", "--max-items", "1", "--methods", "gradcam", "--out", str(run)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"error: {run}") and words in err and "\n" not in err, err


@pytest.mark.parametrize("message", ["database or disk is full", "attempt to write a readonly database",
                                     "UNIQUE constraint failed: done.item"])
def test_cli_database_errors_name_the_run(tmp_path, capsys, monkeypatch, message):
    """Item 9: disk full, a read-only database and an IntegrityError under two runs are one line naming the run."""
    import sqlite3

    from attrdist.bench import store

    kind = sqlite3.IntegrityError if "UNIQUE" in message else sqlite3.OperationalError

    def refuse(self, *args, **kwargs):
        raise kind(message)

    monkeypatch.setattr(store.ResultStore, "write_item", refuse)
    monkeypatch.setattr(store.ResultStore, "write_items", refuse)  # the runner writes a batch at a time
    run = tmp_path / "run"
    assert main(["bench", "localization", "--max-items", "1", "--methods", "gradcam", "--out", str(run)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith(f"error: {run}") and message in err[-1] and "Traceback" not in "\n".join(err), err


def test_an_unforeseen_error_is_one_line_and_its_traceback_on_request(monkeypatch, capsys):
    import attrdist.cli as cli

    def broken(args):
        raise RuntimeError("something inside broke")

    monkeypatch.setitem(cli.COMMAND_RUNNERS, "models", broken)
    monkeypatch.delenv("ATTRDIST_DEBUG", raising=False)
    assert main(["models"]) == 2
    assert capsys.readouterr().err.strip() == ("error: RuntimeError: something inside broke (ATTRDIST_DEBUG=1 shows "
                                               "the traceback)")
    monkeypatch.setenv("ATTRDIST_DEBUG", "1")
    with pytest.raises(RuntimeError):
        main(["models"])


@pytest.mark.parametrize(("mutation", "expected"), [
    ("INSERT INTO scores VALUES ('a','u','m','vanilla','region_attribution','abc')", "where a number belongs"),
    ("INSERT INTO maps VALUES ('a','u','m','var',x'00')", "where a name belongs"),
    ("INSERT INTO curves VALUES ('a','image','m','vanilla','aic','[0.5, \"x\"]')", "where a number belongs"),
    ("UPDATE config SET value='[1,2]' WHERE key='run'", "is a list, not a mapping"),
    ("UPDATE config SET value='{not json' WHERE key='run'", "not valid JSON"),
])
def test_a_crafted_results_database_is_one_line(tmp_path, capsys, mutation, expected):
    from attrdist.bench.records import ItemResult, MapCheck, Score
    from attrdist.bench.store import ResultStore

    with ResultStore(tmp_path / "results.sqlite") as store:
        store.bind_config({"benchmark": "localization", "methods": ["m"]})
        store.write_item("b", ItemResult(scores=[Score("b", "u", "m", "vanilla", "region_attribution", 0.4)],
                                         maps=[MapCheck("b", "u", "m", "vanilla", None)]), 0.0, 0)
        store.db.execute(mutation)
    assert main(["report", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"error: {tmp_path / 'results.sqlite'}: ") and expected in err and "\n" not in err


def test_the_suite_is_large_enough():
    assert len(HTTP) + len(CLI) >= 60
