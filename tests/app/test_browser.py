"""End to end in headless Chromium (Debian's, driven by Playwright; no browser download at test time)."""

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
def page():
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=[
            "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
            "--disable-component-update", "--disable-sync"])
        pg = browser.new_page(viewport={"width": 1400, "height": 1000})
        yield pg
        browser.close()


def stats(url):
    import json

    return json.loads(urllib.request.urlopen(url + "/api/stats").read())


def test_sample_explain_target_by_click_and_instant_var(server, page, tmp_path):
    page.goto(server)
    page.wait_for_selector("#methods input")
    assert page.locator("#src-sample").is_checked() and page.locator("#file").is_disabled()
    page.click("#explain")
    page.wait_for_selector("#busy.on", timeout=10_000)  # a visible busy state, and the button says so
    assert page.locator("#explain").is_disabled() and page.locator("#cancel").is_enabled()
    page.wait_for_selector(".method[data-method=gradcam] img.var", timeout=300_000)
    assert not page.locator("#busy.on").count()
    assert page.locator("#input").is_visible() and page.locator("#input").get_attribute("src").startswith("data:image")
    assert page.locator(".method[data-method=gradcam] img.vanilla").count() == 4
    assert page.locator(".method img.colorbar").count() == 2 * page.locator(".method").count()  # one bar per row
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
    page.screenshot(path=str(tmp_path / "explorer.png"), full_page=True)
    assert (tmp_path / "explorer.png").stat().st_size > 10_000
    shot = os.environ.get("ATTRDIST_SCREENSHOT")
    if shot:
        shutil.copy(tmp_path / "explorer.png", shot)
    before = page.locator(".method[data-method=gradcam] img.var").first.get_attribute("src")
    page.fill("#temperatures", "0.01")
    page.locator("#tau").fill("0.3")
    page.wait_for_function(
        "(b) => document.querySelector('.method[data-method=gradcam] img.var').src !== b", arg=before, timeout=60_000)
    assert stats(server)["model_calls"] == calls  # target and VAR changed without a model call
    assert page.locator("#dl-figure").get_attribute("href").startswith("/api/figure?")
    assert "target=" in page.url and "tau=0.3" in page.url  # the permalink of the current settings
    page.keyboard.press("Tab")  # keyboard-usable: the class rows take focus and Enter picks
    rows.nth(2).focus()
    page.keyboard.press("Enter")
    page.wait_for_function("() => document.querySelector('#classtable tbody tr:nth-child(3)')"
                           ".classList.contains('target')")


def test_permalink_restores_settings(server, page):
    page.goto(server + "/#source=sample&sample=coffee&model=efficientnet_lite0&methods=gradcam&classes=best-vs-worst"
              "&preset=paper&tau=0.1")
    page.wait_for_function("() => document.querySelectorAll('#classtable tbody tr').length === 2", timeout=300_000)
    page.wait_for_selector(".method[data-method=gradcam] img.var", timeout=300_000)
    assert page.locator("#sample").input_value() == "coffee" and page.locator("#preset").input_value() == "paper"


def test_upload(server, page, tmp_path):
    from attrdist.data import sample_image

    sample_image("chelsea").save(tmp_path / "cat.png")
    page.goto(server)
    page.wait_for_selector("#methods input")
    page.set_input_files("#file", str(tmp_path / "cat.png"))
    assert page.locator("#src-upload").is_checked()
    page.click("#explain")
    page.wait_for_selector(".method[data-method=gradcam] img.var", timeout=300_000)
    assert page.locator("#classtable tbody tr").count() == 4


def test_rejects_text_file_renamed_png(server, page, tmp_path):
    fake = tmp_path / "notes.png"
    fake.write_text("just some text, not an image")
    page.goto(server)
    page.wait_for_selector("#methods input")
    page.check("#src-upload")
    page.set_input_files("#file", str(fake))
    page.click("#explain")
    page.wait_for_function("() => document.querySelector('#error').textContent.length > 0", timeout=60_000)
    assert "not an image" in page.locator("#error").text_content()
