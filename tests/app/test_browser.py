"""End to end in headless Chromium (Debian's, driven by Playwright; no browser download at test time).

Desktop (1400x1000) and phone (390x844) layouts, the busy states, cancel, stale results on failure, enlarged maps,
download names, class names in the class set and the permalink.
"""

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

pytestmark = pytest.mark.slow  # end-to-end: `pytest -m "not slow"` leaves it out

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
if not CHROMIUM and not os.environ.get("CI"):
    pytest.skip("Debian's chromium is not installed (CI installs it)", allow_module_level=True)
sync_playwright = pytest.importorskip("playwright.sync_api").sync_playwright

GRADCAM_VAR = ".method[data-method=gradcam] img.var"
#: Set when the results of a VAR change are on screen (decoded); the page deletes nothing itself.
VAR_DONE = "() => document.querySelector('#results').dataset.varMs !== undefined"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server():
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "attrdist", "serve", "--port", str(port)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            env={**os.environ, "PYTHONWARNINGS": "ignore"})
    url = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            urllib.request.urlopen(url + "/api/options", timeout=2)
            break
        except OSError:
            time.sleep(0.2)
    else:
        proc.kill()
        pytest.fail("the explorer did not start: " + proc.stdout.read().decode()[-2000:])
    yield url
    proc.terminate()
    proc.wait(10)


@pytest.fixture(scope="module")
def browser():
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=[
            "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
            "--disable-component-update", "--disable-sync"])
        yield b
        b.close()


@pytest.fixture(scope="module")
def page(browser):
    ctx = browser.new_context(viewport={"width": 1400, "height": 1000}, accept_downloads=True)
    yield ctx.new_page()
    ctx.close()


@pytest.fixture(scope="module")
def phone(browser):
    ctx = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True,
                              device_scale_factor=2)
    yield ctx.new_page()
    ctx.close()


def stats(url):
    return json.loads(urllib.request.urlopen(url + "/api/stats").read())


def fresh(pg, url, explain=False):
    """Load the page anew (a link that differs only in its hash would not reload it); with ``explain``, press Explain
    once the link has filled the form (a link runs no model by itself)."""
    pg.goto("about:blank")
    pg.goto(url)
    if explain:
        pg.wait_for_selector("#methods input")
        pg.click("#explain")


def explained(pg, timeout=300_000):
    """Wait until an Explain (or a VAR change) has its maps on screen."""
    pg.wait_for_function(VAR_DONE, timeout=timeout)


def var_change(pg, action):
    """Run ``action`` (a change of a VAR control) and wait until its maps are on screen."""
    pg.evaluate("() => { delete document.querySelector('#results').dataset.varMs; }")
    action()
    explained(pg, 60_000)


def test_sample_explain_target_by_click_and_instant_var(server, page, tmp_path):
    fresh(page, server)
    page.wait_for_selector("#methods input")
    assert page.locator("#src-sample").is_checked() and page.locator("#file").is_disabled()
    page.click("#explain")
    page.wait_for_selector("#busy.on", timeout=10_000)  # a visible busy state, and the button says so
    assert page.locator("#explain").is_disabled() and page.locator("#cancel").is_enabled()
    assert page.locator("#elapsed").text_content().endswith(" s")  # elapsed time while the model runs
    page.wait_for_selector(f"{GRADCAM_VAR}", timeout=300_000)
    explained(page)
    assert not page.locator("#busy.on").count()
    assert page.locator("#input").is_visible() and page.locator("#input").get_attribute("src").startswith("data:image")
    assert page.locator(".method[data-method=gradcam] img.vanilla").count() == 4
    assert page.locator(".method img.colorbar").count() == 2 * page.locator(".method").count()  # one bar per row
    bar = page.locator(".method[data-method=gradcam] .bar.vanilla .cm").bounding_box()
    assert bar["height"] > 5 * bar["width"]  # a vertical colour bar beside the maps
    rows = page.locator("#classtable tbody tr")
    assert rows.count() == 4
    calls = stats(server)["model_calls"]
    second = rows.nth(1)
    name = second.locator("td").first.text_content()
    second.click()  # pick the target by clicking its name
    page.wait_for_function("() => document.querySelector('#classtable tbody tr:nth-child(2)')"
                           ".classList.contains('target')")
    page.wait_for_function("(n) => [...document.querySelectorAll('.method[data-method=gradcam] .colhead')]"
                           ".some((h) => h.textContent.includes('(target)') && h.textContent.startsWith(n))",
                           arg=name.strip(), timeout=60_000)
    explained(page)
    page.screenshot(path=str(tmp_path / "explorer.png"), full_page=True)
    assert (tmp_path / "explorer.png").stat().st_size > 10_000
    shot = os.environ.get("ATTRDIST_SCREENSHOT")
    if shot:
        shutil.copy(tmp_path / "explorer.png", shot)
    before = page.locator(GRADCAM_VAR).first.get_attribute("src")
    vanilla = page.locator(".method[data-method=gradcam] img.vanilla").first.get_attribute("src")
    # a busy state while VAR re-renders: recorded as the page toggles it
    page.evaluate("""() => { window.__busySeen = false;
        new MutationObserver(() => { if (document.querySelector('#varbusy').classList.contains('on'))
            window.__busySeen = true; }).observe(document.querySelector('#varbusy'), {attributes: true}); }""")
    page.fill("#temperatures", "0.01")
    var_change(page, lambda: page.locator("#tau").fill("0.3"))
    page.wait_for_function(f"(b) => document.querySelector('{GRADCAM_VAR}').src !== b", arg=before, timeout=60_000)
    assert page.evaluate("window.__busySeen") and not page.locator("#varbusy.on").count()
    assert page.locator("#results").get_attribute("aria-busy") == "false"
    assert "re-rendered in" in page.locator("#status").text_content()
    # the same image elements, updated in place: the vanilla row is unchanged
    assert page.locator(".method[data-method=gradcam] img.vanilla").first.get_attribute("src") == vanilla
    assert stats(server)["model_calls"] == calls  # target and VAR changed without a model call
    assert page.locator("#dl-figure").get_attribute("href").startswith("/api/figure?")
    assert "target=" in page.url and "tau=0.3" in page.url  # the permalink of the current settings
    page.keyboard.press("Tab")  # keyboard-usable: the class rows take focus and Enter picks
    rows.nth(2).focus()
    page.keyboard.press("Enter")
    page.wait_for_function("() => document.querySelector('#classtable tbody tr:nth-child(3)')"
                           ".classList.contains('target')")


def test_preset_sets_its_margin_and_downloads_are_named(server, page):
    fresh(page, server + "/#source=sample&sample=chelsea&methods=gradcam&classes=top3%2Bworst", explain=True)
    explained(page)
    var_change(page, lambda: page.select_option("#preset", "authors-code"))
    assert page.locator("#tau").input_value() == "0.01"  # the margin that applies: authors-code's tau_ranked
    assert page.locator("#temperatures").get_attribute("placeholder") == "10"
    var_change(page, lambda: page.select_option("#preset", "paper"))
    assert page.locator("#dl-maps").get_attribute("download") == "chelsea_gradcam_paper.npz"
    with page.expect_download() as dl:
        page.click("#dl-maps")
    assert dl.value.suggested_filename == "chelsea_gradcam_paper.npz"
    with open(dl.value.path(), "rb") as f:
        assert f.read(2) == b"PK"  # the npz itself, not an error
    var_change(page, lambda: page.locator("#tau").fill("0.2"))  # settings that are no preset's say so
    assert page.locator("#dl-figure").get_attribute("download") == "chelsea_gradcam_paper-custom.png"


def test_map_enlarges_on_click_and_closes(server, page):
    fresh(page, server + "/#source=sample&sample=chelsea&methods=gradcam&classes=top3%2Bworst&preset=paper",
          explain=True)
    explained(page)
    img = page.locator(GRADCAM_VAR).nth(1)
    img.click()
    zoom = page.locator("#zoom")
    assert zoom.is_visible() and page.evaluate("document.querySelector('#zoom').open")
    assert page.locator("#zoom-img").get_attribute("src") == img.get_attribute("src")
    assert page.locator("#zoom-img").bounding_box()["width"] > 2 * img.bounding_box()["width"]
    assert page.locator("#zoom-download").get_attribute("download").startswith("chelsea_gradcam_")
    page.keyboard.press("Escape")
    assert not page.evaluate("document.querySelector('#zoom').open")
    img.focus()
    page.keyboard.press("Enter")  # by keyboard too
    assert page.evaluate("document.querySelector('#zoom').open")
    page.locator("#zoom-img").click()  # a click closes it
    assert not page.evaluate("document.querySelector('#zoom').open")


def test_class_names_in_class_set_and_permalink(server, page):
    fresh(page, server + "/#source=sample&sample=chelsea&methods=gradcam&classes=tabby,%20Tiger%20Cat,%20285"
              "&target=egyptian%20cat", explain=True)
    explained(page)
    names = page.locator("#classtable tbody tr td:first-child").all_text_contents()
    assert [n.replace(" (target)", "") for n in names] == ["tabby", "tiger cat", "Egyptian cat"]
    assert page.locator("#classtable tbody tr.target").get_attribute("data-cls") == "285"
    # the margin control follows the server's rule for this (predefined) set, within VAR's bounds
    var_change(page, lambda: page.select_option("#preset", "authors-code"))
    assert page.locator("#tau").input_value() == "0.1"
    assert (page.locator("#tau").get_attribute("min"), page.locator("#tau").get_attribute("max")) == ("-0.99", "0.99")


def test_failed_request_marks_results_stale_and_shows_error_at_top(server, page):
    fresh(page, server + "/#source=sample&sample=chelsea&methods=gradcam&classes=top3%2Bworst&preset=paper",
          explain=True)
    explained(page)
    assert not page.locator("#stale").is_visible()
    page.fill("#classes", "tabby, zebrafishcat")
    page.click("#explain")
    page.wait_for_selector("#error.on")
    assert "zebrafishcat" in page.locator("#error").text_content()
    assert page.locator("#error").bounding_box()["y"] < 100  # at the top, above the settings and results
    assert page.locator("#stale").is_visible() and "failed" in page.locator("#stale").text_content()
    assert float(page.evaluate("getComputedStyle(document.querySelector('#results')).opacity")) < 0.5
    # a VAR change still works on the previous result, which stays marked: it is not what the settings name
    var_change(page, lambda: page.locator("#tau").fill("0.1"))
    assert page.locator("#stale").is_visible()
    page.fill("#classes", "top3+worst")
    page.click("#explain")
    page.wait_for_function("() => !document.querySelector('#results-box').classList.contains('stale')")
    assert not page.locator("#error.on").count()
    # a failed VAR change marks the maps until the next one succeeds
    page.fill("#temperatures", "1,x")
    page.wait_for_selector("#error.on")
    assert "comma-separated" in page.locator("#error").text_content() and page.locator("#stale").is_visible()
    var_change(page, lambda: page.fill("#temperatures", "0.5"))
    assert not page.locator("#stale").is_visible() and not page.locator("#error.on").count()


def test_cancel_stops_a_running_explain(server, page):
    fresh(page, server + "/#source=sample&sample=chelsea&methods=gradcam&classes=top3%2Bworst&preset=paper",
          explain=True)
    explained(page)
    page.locator("#methods input[value=gradcam]").uncheck()
    page.locator("#methods input[value=integrated_gradients]").check()
    page.locator("#methods input[value=smoothgrad]").check()
    page.fill("#classes", "top12")
    page.click("#explain")
    page.wait_for_function("() => parseFloat(document.querySelector('#elapsed').textContent) >= 0.3")
    page.click("#cancel")
    page.wait_for_function("() => !document.querySelector('#busy').classList.contains('on')", timeout=5_000)
    assert "cancelled after" in page.locator("#status").text_content()
    assert page.locator("#explain").is_enabled() and page.locator("#cancel").is_disabled()
    assert page.locator("#stale").is_visible() and "cancelled" in page.locator("#stale").text_content()


def test_permalink_restores_settings(server, page):
    fresh(page, server + "/#source=sample&sample=coffee&model=efficientnet_lite0&methods=gradcam&classes=best-vs-worst"
              "&preset=paper&tau=0.1")
    page.wait_for_selector("#methods input")  # the form is filled before anything runs
    assert page.locator("#sample").input_value() == "coffee"
    assert page.locator("#classes").input_value() == "best-vs-worst"
    assert "press Explain" in page.locator("#status").text_content()
    page.click("#explain")
    page.wait_for_function("() => document.querySelectorAll('#classtable tbody tr').length === 2", timeout=300_000)
    page.wait_for_selector(GRADCAM_VAR, timeout=300_000)
    assert page.locator("#sample").input_value() == "coffee" and page.locator("#preset").input_value() == "paper"
    assert page.locator("#tau").input_value() == "0.1"


def test_upload(server, page, tmp_path):
    from attrdist.data import sample_image

    sample_image("chelsea").save(tmp_path / "my cat.png")
    fresh(page, server)
    page.wait_for_selector("#methods input")
    page.set_input_files("#file", str(tmp_path / "my cat.png"))
    assert page.locator("#src-upload").is_checked()
    page.click("#explain")
    page.wait_for_selector(GRADCAM_VAR, timeout=300_000)
    assert page.locator("#classtable tbody tr").count() == 4
    explained(page)
    assert page.locator("#dl-maps").get_attribute("download").startswith("my-cat_")  # named after the upload


def test_rejects_text_file_renamed_png(server, page, tmp_path):
    fake = tmp_path / "notes.png"
    fake.write_text("just some text, not an image")
    fresh(page, server)
    page.wait_for_selector("#methods input")
    page.check("#src-upload")
    page.set_input_files("#file", str(fake))
    page.click("#explain")
    page.wait_for_selector("#error.on", timeout=60_000)
    assert "not an image" in page.locator("#error").text_content()
    assert page.locator("#error").is_visible()


def _overlap(a, b):
    return not (a["x"] + a["width"] <= b["x"] or b["x"] + b["width"] <= a["x"]
                or a["y"] + a["height"] <= b["y"] or b["y"] + b["height"] <= a["y"])


def test_phone_layout(server, phone, tmp_path):
    pg = phone
    fresh(pg, server + "/#source=sample&sample=chelsea&methods=gradcam,guided_backprop&classes=top3%2Bworst",
          explain=True)
    explained(pg)
    pg.screenshot(path=str(tmp_path / "phone.png"), full_page=True)
    assert (tmp_path / "phone.png").stat().st_size > 10_000
    shot = os.environ.get("ATTRDIST_SCREENSHOT_PHONE")
    if shot:
        shutil.copy(tmp_path / "phone.png", shot)
    width = pg.evaluate("innerWidth")
    assert width == 390
    assert pg.evaluate("document.documentElement.scrollWidth") <= width  # no horizontal scroll
    assert pg.evaluate("document.body.scrollWidth") <= width
    # maps in one column, each most of the screen wide (not shrunk to dots)
    boxes = [m.bounding_box() for m in pg.locator(".method .map img").all()]
    assert len(boxes) == 2 * (4 + 4 + 1)
    assert len({round(b["x"]) for b in boxes}) == 1 and min(b["width"] for b in boxes) > 0.8 * width
    assert all(b["x"] + b["width"] <= width for b in boxes)
    # titles, maps and colour bars do not overlap
    items = [e.bounding_box() for e in pg.locator(".method[data-method=gradcam] :is(h3, figcaption, .map, .bar, "
                                                   ".rowlabel)").all() if e.is_visible()]
    assert len(items) > 10
    assert not [(a, b) for i, a in enumerate(items) for b in items[i + 1:] if _overlap(a, b)]
    # the settings fold away
    summary = pg.locator("#group-var summary")
    summary.click()
    assert not pg.locator("#preset").is_visible()
    summary.click()
    assert pg.locator("#preset").is_visible()
    # an error shows at the top of the screen, wherever the page is scrolled to
    pg.fill("#temperatures", "1,x")
    pg.evaluate("window.scrollTo(0, document.body.scrollHeight)")
    pg.wait_for_selector("#error.on")
    box = pg.evaluate("(() => { const r = document.querySelector('#error').getBoundingClientRect();"
                      " return {top: r.top, bottom: r.bottom, height: r.height}; })()")
    assert pg.evaluate("scrollY") > 1000 and 0 <= box["top"] < 5 and box["bottom"] <= 844 and box["height"] > 10
    assert pg.evaluate("document.documentElement.scrollWidth") <= width


# issue 34, item 2: a link runs no model by itself, and no other site can frame the explorer

#: A class set no other test explains (so a model call would show in the counter, not hit the cache).
UNSEEN = "#source=sample&sample=chelsea&methods=gradient&classes=top5"


def _explains(pg):
    """The /api/explain requests the browser sends from ``pg`` (any frame), recorded from now on."""
    sent = []
    pg.on("request", lambda r: sent.append(r.url) if "/api/explain" in r.url else None)
    return sent


def test_a_link_fills_the_form_and_explains_only_on_a_click(server, browser):
    ctx = browser.new_context(viewport={"width": 1400, "height": 1000})
    pg = ctx.new_page()
    try:
        sent = _explains(pg)
        calls = stats(server)["model_calls"]
        pg.goto(server + "/" + UNSEEN)
        pg.wait_for_selector("#methods input")
        assert pg.locator("#classes").input_value() == "top5"
        assert pg.locator("#methods input[value=gradient]").is_checked()
        pg.evaluate("location.hash = 'source=sample&sample=coffee&methods=gradient&classes=top6'")  # a new link
        pg.wait_for_function("() => document.querySelector('#classes').value === 'top6'")
        time.sleep(2.0)
        assert sent == [] and stats(server)["model_calls"] == calls and not pg.locator("#busy.on").count()
        pg.click("#explain")
        explained(pg)
        assert len(sent) == 1 and stats(server)["model_calls"] == calls + 1
    finally:
        ctx.close()


@pytest.fixture
def other_site(tmp_path, server):
    """A page on another origin (another port, named localhost) that frames the explorer with a link."""
    import functools
    import http.server
    import threading

    (tmp_path / "frame.html").write_text(f'<!doctype html><title>elsewhere</title>'
                                         f'<iframe id="f" src="{server}/{UNSEEN}" width="800" height="600"></iframe>')
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path))
    handler.log_message = lambda *args: None
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield f"http://localhost:{srv.server_address[1]}/frame.html"
    srv.shutdown()
    srv.server_close()


def test_another_site_cannot_frame_the_explorer(server, browser, other_site):
    ctx = browser.new_context()
    pg = ctx.new_page()
    try:
        sent = _explains(pg)
        loaded = []
        pg.on("request", lambda r: loaded.append(r.url) if "/api/options" in r.url else None)
        calls = stats(server)["model_calls"]
        pg.goto(other_site)
        pg.wait_for_load_state("load")
        end = time.monotonic() + 15  # long enough for a framed page to have explained (it did, before issue 34)
        while time.monotonic() < end and stats(server)["model_calls"] == calls:
            time.sleep(0.5)
        assert stats(server)["model_calls"] == calls
        assert sent == [] and loaded == []  # the framed page never ran (its script would ask for the options)
    finally:
        ctx.close()
