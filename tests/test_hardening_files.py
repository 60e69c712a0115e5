"""Outputs are written safely and reports have a bounded cost (issue 34, items 1, 3, 4, 5 and 8).

Every output is a new file renamed over its name: a symbolic link, a hard link or a FIFO at the name is replaced,
never followed, written through or opened. A report opens the store read-only. A crafted database cannot make a
report draw without bound. A model folder never runs its own code. Each test here was seen failing on the code
before its fix.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from PIL import Image

import attrdist.models
from attrdist.cli import main
from attrdist.models import LoadedModel
from attrdist.models.loading import Preprocess

SRC = str(Path(attrdist.__file__).resolve().parents[1])  # the attrdist under test


def _run(*args, stdin="", timeout=120, env=None):
    """``python -m attrdist ARGS`` in a subprocess (what a shell user runs)."""
    environ = {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", ""), **(env or {})}
    return subprocess.run([sys.executable, "-m", "attrdist", *map(str, args)], input=stdin, capture_output=True,
                          text=True, timeout=timeout, env=environ)


def _store(folder, methods=("m",), metrics=("region_attribution",)):
    """A small results database written with the store's own writer."""
    from attrdist.bench.records import ItemResult, MapCheck, Score
    from attrdist.bench.store import ResultStore

    folder.mkdir(parents=True, exist_ok=True)
    with ResultStore(folder / "results.sqlite") as store:
        store.bind_config({"benchmark": "localization", "methods": list(methods)})
        for i in range(3):
            scores = [Score(f"b{i}", "u", m, v, metric, 0.1 * i + 0.01 * j) for j, m in enumerate(methods)
                      for v in ("vanilla", "var") for metric in metrics]
            maps = [MapCheck(f"b{i}", "u", m, v, None) for m in methods for v in ("vanilla", "var")]
            store.write_item(f"b{i}", ItemResult(scores=scores, maps=maps), 0.0, 0)
    return folder


@pytest.fixture
def victim(tmp_path):
    path = tmp_path / "victim.txt"
    path.write_text("precious")
    return path


# ----------------------------------------------------------------------------------------------- item 3: links


def test_config_yaml_symlink_on_resume_is_replaced(tmp_path, victim):
    from attrdist.bench.config import open_run
    from attrdist.bench.localization import LocalizationConfig
    from attrdist.bench.runner import Shard

    run = tmp_path / "run"
    open_run(LocalizationConfig(), run, Shard()).store.close()
    (run / "config.yaml").unlink()
    (run / "config.yaml").symlink_to(victim)
    open_run(LocalizationConfig(), run, Shard()).store.close()
    assert victim.read_text() == "precious"
    assert not (run / "config.yaml").is_symlink() and "model:" in (run / "config.yaml").read_text()


def test_study_yaml_symlink_is_replaced(tmp_path, victim):
    from attrdist.bench.study import StudyConfig

    (tmp_path / "study.yaml").symlink_to(victim)
    StudyConfig().save(tmp_path / "study.yaml")
    assert victim.read_text() == "precious" and not (tmp_path / "study.yaml").is_symlink()


def test_report_replaces_a_hard_link_and_a_symlink(tmp_path, victim, capsys):
    run = _store(tmp_path / "run")
    os.link(victim, run / "report.html")
    (run / "report.md").symlink_to(victim)
    assert main(["report", str(run)]) == 0
    assert victim.read_text() == "precious"
    assert "<html" in (run / "report.html").read_text() and not (run / "report.md").is_symlink()


def test_report_of_a_store_linked_to_an_empty_file_changes_nothing(tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.write_bytes(b"")
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "results.sqlite").symlink_to(empty)
    assert main(["report", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and "results.sqlite" in err
    assert empty.stat().st_size == 0


def test_explain_out_with_a_symlinked_json_is_replaced(tiny_cnn, monkeypatch, tmp_path, victim, capsys):
    lm = LoadedModel(model=tiny_cnn, preprocess=Preprocess(resize=40, crop=32),
                     class_names=[f"class {i}" for i in range(10)], name="tiny", weights="random")
    monkeypatch.setattr(attrdist.models, "load_model", lambda *a, **k: lm)
    photo = tmp_path / "photo.png"
    Image.fromarray((torch.rand(48, 40, 3) * 255).byte().numpy()).save(photo)
    out = tmp_path / "out"
    out.mkdir()
    for suffix in ("json", "npz", "png"):
        (out / f"photo.{suffix}").symlink_to(victim)
    assert main(["explain", str(photo), "--methods", "gradient", "--out", str(out)]) == 0
    assert victim.read_text() == "precious"
    assert json.loads((out / "photo.json").read_text())["classes"]
    assert not any((out / f"photo.{suffix}").is_symlink() for suffix in ("json", "npz", "png"))


# ----------------------------------------------------------------------------------------------- item 4: FIFOs


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs here")
def test_report_does_not_block_on_a_fifo(tmp_path):
    run = _store(tmp_path / "run")
    os.mkfifo(run / "report.md")
    try:
        done = _run("report", run, timeout=90)
    except subprocess.TimeoutExpired:
        pytest.fail("report blocked on a FIFO at report.md")
    assert done.returncode == 0, done.stderr
    assert (run / "report.md").is_file()
