"""COCO and Part-Quad through the runner, on small datasets built from the sample photos."""

import json

import numpy as np
import pytest
from PIL import Image

from attrdist.bench import (
    CocoConfig,
    CocoLocalization,
    Localization,
    LocalizationConfig,
    ResultStore,
    SkippedItem,
    run_localization,
)
from attrdist.data.grids import Candidate
from attrdist.data.imagenet import imagenet_class_names
from attrdist.data.samples import sample_image

pytestmark = pytest.mark.slow  # end-to-end: `pytest -m "not slow"` leaves it out

_, WNIDS = imagenet_class_names()


def _poly(x0, y0, w, h):
    return [[x0, y0, x0 + w, y0, x0 + w, y0 + h, x0, y0 + h]]


def test_coco_run(tmp_path, lite0):
    (tmp_path / "val2017").mkdir()
    (tmp_path / "annotations").mkdir()
    canvas = Image.new("RGB", (448, 224))
    canvas.paste(sample_image("chelsea").resize((224, 224)), (0, 0))
    canvas.paste(sample_image("coffee").resize((224, 224)), (224, 0))
    canvas.save(tmp_path / "val2017" / "000000000007.jpg")
    canvas.crop((0, 0, 224, 224)).save(tmp_path / "val2017" / "000000000008.jpg")  # one category only
    anns = [
        {"id": 1, "image_id": 7, "category_id": 17, "segmentation": _poly(0, 0, 224, 224), "area": 224 * 224,
         "bbox": [0, 0, 224, 224], "iscrowd": 0},
        {"id": 2, "image_id": 7, "category_id": 47, "segmentation": _poly(224, 0, 224, 224), "area": 224 * 224,
         "bbox": [224, 0, 224, 224], "iscrowd": 0},
        {"id": 3, "image_id": 8, "category_id": 17, "segmentation": _poly(0, 0, 224, 224), "area": 224 * 224,
         "bbox": [0, 0, 224, 224], "iscrowd": 0},
    ]
    images = [{"id": 7, "file_name": "000000000007.jpg", "height": 224, "width": 448},
              {"id": 8, "file_name": "000000000008.jpg", "height": 224, "width": 224}]
    cats = [{"id": 17, "name": "cat"}, {"id": 47, "name": "cup"}]
    (tmp_path / "annotations" / "instances_val2017.json").write_text(
        json.dumps({"images": images, "annotations": anns, "categories": cats}))
    cfg = CocoConfig(dataset=f"coco:{tmp_path}", methods=["gradcam"])
    with CocoLocalization.run(cfg, tmp_path / "run", lm=lite0) as run:
        scores, maps, skipped = run.store.scores(), run.store.maps(), run.store.skipped()
    assert {s.unit for s in scores} == {m.unit for m in maps} == {"obj1:cat", "obj2:cup"}
    ra = {(s.unit, s.variant): s.value for s in scores if s.metric == "region_attribution"}
    assert ra[("obj1:cat", "vanilla")] > 0.5 and ra[("obj2:cup", "vanilla")] > 0.5
    assert skipped == [SkippedItem("8", "1 category with probability >= 0.0001; VAR needs 2")]


def test_part_quad_run(tmp_path, lite0):
    names = ["chelsea", "coffee", "rocket", "camera"]
    wnids = [WNIDS[282], WNIDS[967], WNIDS[657], WNIDS[872]]
    images, anns = [], []
    for i, (n, w) in enumerate(zip(names, wnids, strict=True)):
        sample_image(n).resize((100, 100)).save(tmp_path / f"{w}_{i}.JPEG")
        images.append({"id": i, "file_name": f"{w}_{i}.JPEG", "height": 100, "width": 100})
        anns.append({"id": i, "image_id": i, "category_id": 1, "segmentation": _poly(25, 25, 50, 50), "area": 2500,
                     "iscrowd": 0})
    (tmp_path / "parts.json").write_text(json.dumps({"images": images, "annotations": anns,
                                                     "categories": [{"id": 1, "name": "part"}]}))
    cfg = LocalizationConfig(dataset=f"parts:{tmp_path}", methods=["gradcam"], cell=64, selection="random")
    run_localization(cfg, tmp_path / "run", lm=lite0).close()
    with ResultStore(tmp_path / "run" / "results.sqlite", read_only=True) as s:
        scores, maps = s.scores(), s.maps()
    assert {x.unit for x in scores} == {m.unit for m in maps} == {"cell0", "cell1", "cell2", "cell3"}
    assert np.isfinite([x.value for x in scores]).all()
    # the region of a cell is the object's mask inside it (the central quarter), not the whole cell
    bench = Localization.build(cfg, lite0)
    prep = bench.prepare(bench.items()[0])
    for k, unit in enumerate(prep.units):
        rows_, cols = np.nonzero(unit.mask)
        assert abs(int(unit.mask.sum()) - 32 * 32) <= 2 * 64
        assert rows_.min() >= (k // 2) * 64 + 14 and cols.max() < (k % 2 + 1) * 64 - 14


def _tiny_coco(root):
    (root / "val2017").mkdir(parents=True)
    (root / "annotations").mkdir()
    canvas = Image.new("RGB", (640, 480))
    canvas.paste(sample_image("chelsea").resize((320, 480)), (0, 0))
    canvas.paste(sample_image("coffee").resize((320, 480)), (320, 0))
    canvas.save(root / "val2017" / "000000000009.jpg")
    anns = [
        {"id": 1, "image_id": 9, "category_id": 17, "segmentation": _poly(0, 0, 320, 480), "area": 320 * 480,
         "bbox": [0, 0, 320, 480], "iscrowd": 0},
        {"id": 2, "image_id": 9, "category_id": 47, "segmentation": _poly(320, 0, 320, 480), "area": 320 * 480,
         "bbox": [320, 0, 320, 480], "iscrowd": 0},
    ]
    (root / "annotations" / "instances_val2017.json").write_text(json.dumps({
        "images": [{"id": 9, "file_name": "000000000009.jpg", "height": 480, "width": 640}], "annotations": anns,
        "categories": [{"id": 17, "name": "cat"}, {"id": 47, "name": "cup"}]}))


def test_coco_at_the_model_input_size_on_a_vit(tmp_path):
    """COCO images are squashed to the model's input size (the authors' Resize((224, 224))), masks with them, so a
    ViT with a fixed input size runs COCO; the command line says nothing but the table."""
    import os
    import subprocess
    import sys

    pytest.importorskip("timm")
    _tiny_coco(tmp_path / "coco")
    proc = subprocess.run([sys.executable, "-m", "attrdist", "bench", "coco", "--dataset",
                           f"coco:{tmp_path / 'coco'}", "--model", "timm:vit_tiny_patch16_224", "--weights", "random",
                           "--methods", "gradcam,gae", "--min-prob", "0", "--out", str(tmp_path / "run")],
                          capture_output=True, text=True, env={**os.environ, "PYTHONWARNINGS": "ignore"}, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    with ResultStore(tmp_path / "run" / "results.sqlite", read_only=True) as s:
        maps = s.maps()
    assert {m.unit for m in maps} == {"obj1:cat", "obj2:cup"} and {m.method for m in maps} == {"gradcam", "gae"}


def test_coco_masks_follow_the_resize(tmp_path, lite0):
    _tiny_coco(tmp_path / "coco")
    cfg = CocoConfig(dataset=f"coco:{tmp_path / 'coco'}", methods=["gradcam"], min_prob=0.0)
    prep = CocoLocalization.build(cfg, lite0).prepare("9")
    assert tuple(prep.x.shape[-2:]) == (224, 224)  # 640x480 squashed to the model's 224x224
    left, right = prep.objects[0][2], prep.objects[1][2]
    assert left.shape == (224, 224) and left[:, :112].all() and not left[:, 112:].any() and right[:, 112:].all()


def test_rao_filter_classifies_the_cell_it_will_show(tmp_path, lite0):
    """--selection rao: the cell is the model's centre-crop view, and the confidence is that cell's."""
    import torch

    from attrdist.data.prepare import fit, model_input

    folder = tmp_path / "imgs"
    for name, cls in (("chelsea", 282), ("coffee", 967), ("rocket", 657), ("camera", 872)):
        (folder / str(cls)).mkdir(parents=True)
        sample_image(name).save(folder / str(cls) / f"{name}.png")
    cfg = LocalizationConfig(dataset=f"folder:{folder}", selection="rao", confidence=0.0, cell=112, methods=["gradcam"])
    bench = Localization.build(cfg, lite0)
    cands = bench._with_predictions([Candidate("282/chelsea.png", 282)])
    cell = fit(lite0.preprocess.crop_image(sample_image("chelsea")), 112)
    with torch.no_grad():
        p = lite0.model(model_input(cell, lite0.preprocess, crop=False)[1]).softmax(1)[0]
    assert cands[0].correct == (int(p.argmax()) == 282)
    assert abs(cands[0].confidence - (float(p.max()) if cands[0].correct else 0.0)) < 1e-6
    assert bench._cell("282/chelsea.png").tobytes() == cell.tobytes()
