"""Issue 21, items 4, 6, 7 and 8: ``attrdist explain`` in-process, with a tiny model in place of the real one.

Several presets from one model call, "did you mean" on every choice, a folder as image, inputs with the same
name, the class-set line and the warning line for zeroed maps, and ``--width``.
"""

import json
import subprocess
import sys

import pytest
import torch
from PIL import Image

import attrdist.models
from attrdist.cli import main
from attrdist.models import LoadedModel
from attrdist.models.loading import Preprocess

NAMES = [f"class {i}" for i in range(8)] + ["tiger cat", "tabby"]


@pytest.fixture
def calls(tiny_cnn, monkeypatch):
    """The number of forward passes of the model ``attrdist explain`` loads (a tiny CNN)."""
    count = [0]
    tiny_cnn.register_forward_hook(lambda *_: count.__setitem__(0, count[0] + 1))
    lm = LoadedModel(model=tiny_cnn, preprocess=Preprocess(resize=40, crop=32), class_names=NAMES, name="tiny",
                     weights="random")
    monkeypatch.setattr(attrdist.models, "load_model", lambda *a, **k: lm)
    return count


@pytest.fixture
def photo(tmp_path):
    gen = torch.Generator().manual_seed(0)
    path = tmp_path / "photo.png"
    Image.fromarray((torch.rand(48, 40, 3, generator=gen) * 255).byte().numpy()).save(path)
    return path


def test_several_presets_refine_one_set_of_raw_maps(calls, photo, tmp_path, capsys):
    assert main(["explain", str(photo), "--methods", "gradient", "--preset", "paper", "--out",
                 str(tmp_path / "one")]) == 0
    once = calls[0]
    calls[0] = 0
    assert main(["explain", str(photo), "--methods", "gradient", "--preset", "paper,authors-code,smoothed-positive",
                 "--out", str(tmp_path / "three")]) == 0
    assert calls[0] == once  # the same model calls as for one preset
    rec = json.loads((tmp_path / "three" / "photo.json").read_text())
    assert list(rec["presets"]) == ["paper", "authors-code", "smoothed-positive"]
    assert rec["settings"]["preset"] == ["paper", "authors-code", "smoothed-positive"]
    one = Image.open(tmp_path / "one" / "photo.png").size
    three = Image.open(tmp_path / "three" / "photo.png").size
    assert three[0] == one[0] and three[1] > one[1]  # two more rows in the same figure


@pytest.mark.parametrize("args, hint", [
    (["explain", "--preset", "papr"], "did you mean 'paper'?"),
    (["explain", "--preset", "paper,autors-code"], "did you mean 'authors-code'?"),
    (["explain", "--sign", "absolut"], "did you mean 'absolute'?"),
    (["explain", "--format", "png,pfd"], "did you mean 'pdf'?"),
    (["explain", "--normalize", "quantil"], "did you mean 'quantile'?"),
    (["explian"], "did you mean 'explain'?"),
    (["bench", "localisation", "--out", "x"], "did you mean 'localization'?"),
])
def test_did_you_mean_on_every_choice(args, hint, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(args)
    assert exit_.value.code == 2
    assert hint in capsys.readouterr().err


def test_did_you_mean_for_a_method(calls, capsys, tmp_path):
    assert main(["explain", "--methods", "gradcm", "--out", str(tmp_path)]) == 2
    assert "did you mean 'gradcam'" in capsys.readouterr().err


def test_a_folder_given_as_image_is_one_clear_line(calls, tmp_path, capsys):
    (tmp_path / "photos").mkdir()
    assert main(["explain", str(tmp_path / "photos"), "--methods", "gradient", "--out", str(tmp_path / "o")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"error: {tmp_path / 'photos'}: a folder, not an image (give the image files, e.g. "
                   f"{tmp_path / 'photos'}/*.jpg)"]


def test_inputs_with_the_same_file_name_keep_their_relative_paths(calls, photo, tmp_path):
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        Image.open(photo).save(tmp_path / folder / "photo.jpg")
    out = tmp_path / "out"
    assert main(["explain", str(tmp_path / "a" / "photo.jpg"), str(tmp_path / "b" / "photo.jpg"), "--methods",
                 "gradient", "--out", str(out)]) == 0
    assert (out / "a" / "photo.png").exists() and (out / "b" / "photo.png").exists()
    assert json.loads((out / "b" / "photo.json").read_text())["source"].endswith("b/photo.jpg")


def test_the_class_set_line_explains_its_star_and_zeroed_maps_are_one_warning_line(calls, photo, tmp_path, capsys):
    assert main(["explain", str(photo), "--methods", "gradient", "--preset", "paper", "--tau", "0.9", "--classes",
                 "tiger cat,tabby", "--target", "tabby", "--out", str(tmp_path)]) == 0
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith(f"{photo}: class set (* the explained class) 8 tiger cat (")
    assert err[0].endswith(") *") and "9 tabby" in err[0]
    warnings = [line for line in err if "warning" in line]
    assert warnings == ["  warning: VAR zeroed these maps (no pixel where the class dominates under these "
                        "parameters; the figure marks them): gradient: tiger cat, tabby (the explained class)"]


def test_width_lays_the_figure_out_for_its_printed_size(calls, photo, tmp_path):
    assert main(["explain", str(photo), "--methods", "gradient", "--width", "3.3", "--dpi", "100", "--out",
                 str(tmp_path)]) == 0
    assert Image.open(tmp_path / "photo.png").size[0] == 330


@pytest.mark.slow
def test_a_warning_is_one_line_without_its_source_line(tmp_path):
    pytest.importorskip("timm")
    proc = subprocess.run([sys.executable, "-m", "attrdist", "explain", "--model", "timm:vit_tiny_patch16_224",
                           "--weights", "random", "--methods", "rollout", "--out", str(tmp_path)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = [line for line in proc.stderr.splitlines() if "class-agnostic" in line]
    assert lines and lines[0].startswith("warning: method rollout is class-agnostic")
    assert "warnings.warn" not in proc.stderr and ".py:" not in proc.stderr


def test_each_preset_is_refined_once_per_explain(calls, photo, tmp_path, monkeypatch):
    """Issue 30, item 6: the figure, the JSON, the npz and the warning line read the refined rows the explanation
    holds; ``--preset a,b`` runs VAR once per method and preset."""
    import attrdist.var

    refined = []
    operator = attrdist.var.refine

    def counted(maps, preset=None, **kw):
        out = operator(maps, preset, **kw)
        refined.append(out.config)
        return out

    monkeypatch.setattr(attrdist.var, "refine", counted)
    assert main(["explain", str(photo), "--methods", "gradient,gradcam", "--preset", "paper,authors-code", "--tau",
                 "0.9", "--out", str(tmp_path)]) == 0
    paper, authors = (attrdist.var.get_preset(p, tau=0.9) for p in ("paper", "authors-code"))
    assert sorted(map(str, refined)) == sorted(map(str, [paper, paper, authors, authors]))
    assert set(json.loads((tmp_path / "photo.json").read_text())["zeroed_by_preset"]) == {
        "paper (tau=0.9)", "authors-code (tau=0.9)"}
