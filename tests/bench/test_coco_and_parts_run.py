"""COCO and Part-Quad through the runner, on small datasets built from the sample photos."""

import json

import numpy as np
from PIL import Image

from attrdist.bench import LocalizationBenchmark, LocalizationConfig, ResultStore, run_localization
from attrdist.data.imagenet import imagenet_class_names
from attrdist.data.samples import sample_image

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
    cfg = LocalizationConfig(dataset=f"coco:{tmp_path}", methods=["gradcam"])
    store = run_localization(cfg, tmp_path / "run", lm=lite0)
    rows = store.rows()
    assert {r[1] for r in rows} == {"obj1:cat", "obj2:cup"}
    ra = {(r[1], r[3]): r[5] for r in rows if r[4] == "region_attribution"}
    assert ra[("obj1:cat", "vanilla")] > 0.5 and ra[("obj2:cup", "vanilla")] > 0.5
    assert store.skipped() == [("8", "1 category with probability >= 0.0001; VAR needs 2")]
    store.close()


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
    with ResultStore(tmp_path / "run" / "results.sqlite") as s:
        rows = s.rows()
    assert {r[1] for r in rows} == {"cell0", "cell1", "cell2", "cell3"}
    assert np.isfinite([r[5] for r in rows]).all()
    # the region of a cell is the object's mask inside it (the central quarter), not the whole cell
    bench = LocalizationBenchmark(cfg, lite0)
    prep = bench.prepare(bench.items()[0])
    for k, unit in enumerate(prep.units):
        rows_, cols = np.nonzero(unit.mask)
        assert abs(int(unit.mask.sum()) - 32 * 32) <= 2 * 64
        assert rows_.min() >= (k // 2) * 64 + 14 and cols.max() < (k % 2 + 1) * 64 - 14
