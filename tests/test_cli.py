"""End-to-end: the command line in a subprocess, with the real EfficientNet-Lite0 on sample photos."""

import io
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from attrdist import get_method
from attrdist import refine as var
from attrdist.data import read_image, sample_image
from attrdist.var import DEFAULT_PRESET, PRESETS

pytestmark = pytest.mark.slow  # end-to-end: `pytest -m "not slow"` leaves it out


def run(*args, cwd=None):
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    return subprocess.run([sys.executable, "-m", "attrdist", *args], capture_output=True, text=True, cwd=cwd,
                          env=env, timeout=600)


def assert_figure_size(size, k, n_methods, cell=2.2, dpi=200):
    """Panels of ``cell`` inches, plus margins for the names, the colour bars, the legend and the footer."""
    width, height = size[0] / dpi, size[1] / dpi
    assert cell * (k + 1) < width < cell * (k + 1) + 2.0, size
    assert cell * 2 * n_methods < height < cell * 2 * n_methods + 2.5, size


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    d = tmp_path_factory.mktemp("imgs")
    cat = sample_image("chelsea")
    cat.save(d / "cat.png")
    cat.convert("L").save(d / "grey.png")
    rgba = cat.convert("RGBA")
    rgba.putalpha(128)
    rgba.save(d / "rgba.png")
    cat.convert("P", palette=Image.Palette.ADAPTIVE).save(d / "palette.png")
    arr16 = (np.asarray(cat.convert("L"), dtype=np.uint16) * 257)
    Image.fromarray(arr16).save(d / "sixteen.png")
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees on display
    cat.save(d / "rotated.jpg", exif=exif)
    cat.resize((4000, 3000)).save(d / "large.jpg")
    cat.resize((7, 5)).save(d / "small.png")
    (d / "notes.png").write_text("this is not an image")
    buf = io.BytesIO()
    cat.save(buf, format="PNG")
    (d / "truncated.png").write_bytes(buf.getvalue()[:2000])
    (d / "empty.jpg").write_bytes(b"")
    return d


@pytest.fixture(scope="module")
def explained(images, tmp_path_factory):
    out = tmp_path_factory.mktemp("out")
    good = ["cat.png", "grey.png", "rgba.png", "palette.png", "sixteen.png", "rotated.jpg", "large.jpg", "small.png"]
    bad = ["notes.png", "truncated.png", "empty.jpg", "missing.png"]
    files = [str(images / f) for f in bad[:2] + good + bad[2:]]
    proc = run("explain", *files, "--methods", "gradcam,input_x_gradient", "--out", str(out), "--format", "png,pdf")
    return proc, out, good, bad


def test_good_images_all_processed(explained):
    proc, out, good, _ = explained
    sizes = set()
    for name in good:
        stem = name.rsplit(".", 1)[0]
        png = Image.open(out / f"{stem}.png")
        png.load()
        assert_figure_size(png.size, 4, 2)
        sizes.add(png.size)
        assert (out / f"{stem}.pdf").read_bytes().startswith(b"%PDF")
        rec = json.loads((out / f"{stem}.json").read_text())
        assert rec["methods"] == ["gradcam", "input_x_gradient"] and len(rec["classes"]) == 4
    assert len(sizes) == 1  # one layout for every photo


def test_bad_images_fail_clearly_but_others_continue(explained):
    proc, out, _, bad = explained
    assert proc.returncode == 1
    assert "notes.png: not an image file" in proc.stderr
    assert "truncated.png: cannot decode" in proc.stderr
    assert "empty.jpg: the file is empty" in proc.stderr
    assert "missing.png: no such file" in proc.stderr
    for name in bad:
        assert not (out / f"{name.rsplit('.', 1)[0]}.json").exists()


def test_json_and_npz_match_direct_library_calls(explained, images, lite0):
    _, out, _, _ = explained
    rec = json.loads((out / "cat.json").read_text())
    x = lite0.preprocess(read_image(images / "cat.png"))[None]
    with torch.no_grad():
        probs = lite0.model(x).softmax(1)[0]
    classes = [c["index"] for c in rec["classes"]]
    order = probs.argsort(descending=True).tolist()
    assert classes == order[:3] + [order[-1]]
    np.testing.assert_allclose([c["probability"] for c in rec["classes"]], probs[classes].numpy(), rtol=1e-5)
    assert [c["name"] for c in rec["classes"]] == [lite0.class_names[c] for c in classes]
    assert rec["target"]["index"] == order[0]
    assert rec["preset"] == PRESETS[DEFAULT_PRESET].to_dict() and rec["model"]["name"] == "efficientnet_lite0"
    arrays = np.load(out / "cat.npz")
    cls = torch.tensor([classes])
    for name in ("gradcam", "input_x_gradient"):
        direct = get_method(name, lite0.model)(x, cls)
        tol = dict(rtol=1e-4, atol=1e-6 * float(direct.abs().max()))
        np.testing.assert_allclose(arrays[f"maps_{name}"], direct[0].numpy(), **tol)
        np.testing.assert_allclose(arrays[f"refined_{name}"], var(direct, ranked=True).refined[0].numpy(), **tol)
    assert arrays["image"].shape == (224, 224, 3)


def test_default_sample_grid(tmp_path):
    proc = run("explain", "--out", str(tmp_path / "o"), "--method", "gradcam")  # --method is --methods
    assert proc.returncode == 0, proc.stderr
    rec = json.loads((tmp_path / "o" / "sample_grid.json").read_text())
    names = [c["name"] for c in rec["classes"]]
    assert len(set(names)) == 4 and "espresso" in names  # the four photos' own classes
    assert_figure_size(Image.open(tmp_path / "o" / "sample_grid.png").size, 4, 1)
    assert rec["input_size"] == [448, 448]


@pytest.mark.parametrize("args, msg", [
    (["--methods", "nope"], "unknown method"),
    (["--model", "torchvision:resnet50"], "--weights PATH"),
    (["--model", "nonsense"], "unknown model"),
    (["--format", "gif"], "invalid choice"),
    (["--methods", "rollout"], "'rollout' applies to vit models"),
])
def test_usage_errors(args, msg, tmp_path):
    proc = run("explain", "--out", str(tmp_path), *args)
    assert proc.returncode == 2 and msg in proc.stderr


def test_list_commands():
    proc = run("methods")
    assert proc.returncode == 0 and "gradcam" in proc.stdout and "lrp" in proc.stdout
    proc = run("models")
    assert proc.returncode == 0 and "efficientnet_lite0" in proc.stdout and "resnet" in proc.stdout


def test_vit_explain_multiply_input(tmp_path):
    pytest.importorskip("timm")
    proc = run("explain", "--model", "timm:vit_tiny_patch16_224", "--weights", "random", "--methods", "gae,gradcam",
               "--multiply-input", "--out", str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    rec = json.loads((tmp_path / "sample_grid.json").read_text())
    assert rec["input_size"] == [224, 224] and rec["methods"] == ["gae", "gradcam"]


def test_figures_for_a_paper(tmp_path):
    """PNG at the asked resolution, PDF and SVG as vector graphics, method display names, the sign option."""
    proc = run("explain", "--methods", "gradcam,input_x_gradient", "--format", "png,pdf,svg", "--dpi", "150",
               "--sign", "positive", "--out", str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    png = Image.open(tmp_path / "sample_grid.png")
    assert_figure_size(png.size, 4, 2, dpi=150)
    assert round(png.info["dpi"][0]) == 150
    pdf = (tmp_path / "sample_grid.pdf").read_bytes()
    assert pdf.startswith(b"%PDF") and b"/Font" in pdf  # text stays text (vector), maps are embedded images
    svg = (tmp_path / "sample_grid.svg").read_text()
    assert "<svg" in svg and "<path" in svg and "<!-- Input x Gradient -->" in svg  # display names
    rec = json.loads((tmp_path / "sample_grid.json").read_text())
    assert rec["settings"]["sign"] == "positive" and rec["settings"]["dpi"] == 150


def test_inputs_with_the_same_name_keep_their_paths(tmp_path):
    """a/photo.jpg and b/photo.jpg wrote one photo.png twice; now each keeps its relative path."""
    for folder, name in (("a", "chelsea"), ("b", "coffee")):
        (tmp_path / folder).mkdir()
        sample_image(name).save(tmp_path / folder / "photo.jpg")
    out = tmp_path / "out"
    proc = run("explain", str(tmp_path / "a" / "photo.jpg"), str(tmp_path / "b" / "photo.jpg"), "--methods",
               "gradcam", "--out", str(out))
    assert proc.returncode == 0, proc.stderr[-2000:]
    records = {f: json.loads((out / f / "photo.json").read_text()) for f in ("a", "b")}
    assert records["a"]["source"].endswith("a/photo.jpg") and records["b"]["source"].endswith("b/photo.jpg")
    assert not (out / "photo.png").exists()


def test_classes_by_name(tmp_path):
    sample_image("chelsea").save(tmp_path / "cat.png")
    proc = run("explain", str(tmp_path / "cat.png"), "--target", "egyptian cat", "--classes",
               "tabby,tiger cat,Egyptian cat", "--method", "gradcam", "--out", str(tmp_path / "o"))
    assert proc.returncode == 0, proc.stderr[-2000:]
    rec = json.loads((tmp_path / "o" / "cat.json").read_text())
    assert [c["index"] for c in rec["classes"]] == [281, 282, 285] and rec["target"]["index"] == 285


def test_zeroed_maps_are_marked_and_warned(tmp_path):
    sample_image("chelsea").save(tmp_path / "cat.png")
    proc = run("explain", str(tmp_path / "cat.png"), "--method", "gradcam", "--preset", "paper", "--tau", "0.3",
               "--out", str(tmp_path / "o"))
    assert proc.returncode == 0 and "warning: VAR zeroed these maps" in proc.stderr
    assert "gradcam: tiger cat (the explained class)" in proc.stderr


def test_zeroed_panels_say_so():
    import matplotlib.figure
    import torch

    from attrdist.viz import explanation_figure

    class Result:  # the fields the figure reads (viz.RefinedMaps)
        maps = torch.rand(1, 2, 8, 8)
        refined = torch.zeros(1, 2, 8, 8)
        q = torch.full((1, 2, 8, 8), 0.5, dtype=torch.float64)
        kept_nothing = torch.ones(1, 2, dtype=torch.bool)

    class Exp:  # viz.ExplanationLike
        image = Image.new("RGB", (8, 8))
        classes, target, class_names, probabilities = [1, 2], 1, ["a", "b"], [0.6, 0.4]
        results, display_names = {"gradient": Result()}, {}

        def variant_results(self):
            return {"": self.results}

        def caption(self):
            return ""

    fig = explanation_figure(Exp(), caption=False)
    assert isinstance(fig, matplotlib.figure.Figure)
    assert sum("zeroed by VAR" in t.get_text() for ax in fig.axes for t in ax.texts) == 2
