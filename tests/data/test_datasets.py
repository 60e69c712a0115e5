import json

import numpy as np
import pytest
from PIL import Image

from attrdist.data.datasets import (
    DatasetLayoutError,
    coco_category_sets,
    read_coco,
    read_image_folder,
    read_imagenet_val,
    read_part_segmentations,
)
from attrdist.data.imagenet import imagenet_class_names

NAMES, WNIDS = imagenet_class_names()


def img(path, size=(20, 16)):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, (10, 20, 30)).save(path)


def test_imagenet_csv_layout(tmp_path):
    for i in (1, 2):
        img(tmp_path / f"ILSVRC2012_val_0000000{i}.JPEG")
    (tmp_path / "LOC_val_solution.csv").write_text(
        "ImageId,PredictionString\n"
        f"ILSVRC2012_val_00000001,{WNIDS[65]} 1 2 3 4 {WNIDS[65]} 5 6 7 8\n"
        f"ILSVRC2012_val_00000002,{WNIDS[970]} 1 2 3 4\n"
        "ILSVRC2012_val_00000003,n01440764 1 2 3 4\n"  # listed but absent: skipped
    )
    recs = read_imagenet_val(tmp_path)
    assert [(r.id, r.label) for r in recs] == [("ILSVRC2012_val_00000001", 65), ("ILSVRC2012_val_00000002", 970)]


def test_imagenet_devkit_layout(tmp_path):
    from scipy.io import savemat

    # the devkit numbers classes in its own order: ILSVRC2012_ID 1 is WNIDS[3] here
    order = [3, 0, 1, 2]
    dtype = [("ILSVRC2012_ID", "O"), ("WNID", "O"), ("num_children", "O")]
    syn = np.array([(i + 1, WNIDS[w], 0) for i, w in enumerate(order)], dtype=dtype)
    (tmp_path / "devkit" / "data").mkdir(parents=True)
    savemat(tmp_path / "devkit" / "data" / "meta.mat", {"synsets": syn})
    (tmp_path / "devkit" / "data" / "ILSVRC2012_validation_ground_truth.txt").write_text("1\n4\n")
    for i in (1, 2):
        img(tmp_path / "val" / f"ILSVRC2012_val_0000000{i}.JPEG")
    assert [r.label for r in read_imagenet_val(tmp_path)] == [3, 2]


def test_folder_layouts(tmp_path):
    img(tmp_path / WNIDS[7] / "a.jpg")
    img(tmp_path / "12" / "b.png")
    (tmp_path / "notes").mkdir()
    assert [(r.id, r.label) for r in read_image_folder(tmp_path)] == [("12/b.png", 12), (f"{WNIDS[7]}/a.jpg", 7)]
    assert len(read_imagenet_val(tmp_path)) == 2


def test_layout_errors(tmp_path):
    with pytest.raises(DatasetLayoutError, match="no such folder"):
        read_imagenet_val(tmp_path / "nope")
    with pytest.raises(DatasetLayoutError, match="LOC_val_solution.csv"):
        read_imagenet_val(tmp_path)
    (tmp_path / "ILSVRC2012_validation_ground_truth.txt").write_text("1\n")
    with pytest.raises(DatasetLayoutError, match="meta.mat"):
        read_imagenet_val(tmp_path)


def _coco_json(path, images, anns, cats):
    path.write_text(json.dumps({"images": images, "annotations": anns, "categories": cats}))


def test_part_segmentations(tmp_path):
    img(tmp_path / "images" / f"{WNIDS[1]}_5.JPEG", (10, 10))
    img(tmp_path / "images" / "unlabelled.JPEG", (10, 10))
    square = [[1, 1, 5, 1, 5, 5, 1, 5]]
    _coco_json(tmp_path / "ann.json",
               [{"id": 1, "file_name": f"{WNIDS[1]}_5.JPEG", "height": 10, "width": 10},
                {"id": 2, "file_name": "unlabelled.JPEG", "height": 10, "width": 10}],
               [{"id": 1, "image_id": 1, "category_id": 1, "segmentation": square, "area": 16, "iscrowd": 0},
                {"id": 2, "image_id": 1, "category_id": 2, "segmentation": [[6, 6, 9, 6, 9, 9, 6, 9]], "area": 9,
                 "iscrowd": 0}],
               [{"id": 1, "name": "head"}, {"id": 2, "name": "tail"}])
    (rec,) = read_part_segmentations(tmp_path)
    assert rec.label == 1
    m = rec.mask()
    assert m.shape == (10, 10) and m[2, 2] and m[7, 7] and not m[0, 9]


def test_coco(tmp_path):
    pytest.importorskip("pycocotools")
    img(tmp_path / "val2017" / "000000000001.jpg", (100, 100))
    (tmp_path / "annotations").mkdir()
    poly = lambda x0, y0, s: [[x0, y0, x0 + s, y0, x0 + s, y0 + s, x0, y0 + s]]  # noqa: E731
    _coco_json(tmp_path / "annotations" / "instances_val2017.json",
               [{"id": 1, "file_name": "000000000001.jpg", "height": 100, "width": 100}],
               [{"id": 10, "image_id": 1, "category_id": 17, "segmentation": poly(0, 0, 40), "area": 1600,
                 "bbox": [0, 0, 40, 40], "iscrowd": 0},
                {"id": 11, "image_id": 1, "category_id": 18, "segmentation": poly(50, 50, 5), "area": 25,
                 "bbox": [50, 50, 5, 5], "iscrowd": 0},  # 0.25% of the image: dropped
                {"id": 12, "image_id": 1, "category_id": 11, "segmentation": poly(60, 0, 30), "area": 900,
                 "bbox": [60, 0, 30, 30], "iscrowd": 0}],  # fire hydrant: no ImageNet counterpart
               [{"id": 17, "name": "cat"}, {"id": 18, "name": "dog"}, {"id": 11, "name": "fire hydrant"}])
    data = read_coco(tmp_path)
    path, h, w, objs = data[1]
    assert [o.category for o in objs] == ["cat"] and objs[0].imagenet == (281, 282, 283, 284, 285)
    assert objs[0].mask().sum() == pytest.approx(1600, rel=0.1)


def test_coco_map_is_valid():
    sets, none = coco_category_sets()
    assert len(sets) + len(none) == 80 and not set(sets) & set(none)
    assert all(0 <= i < 1000 for s in sets.values() for i in s)
    assert sets["cup"] and "person" in sets and NAMES[sets["banana"][0]] == "banana"
    flat = [i for s in sets.values() for i in s]
    # a class may serve two categories only where they overlap on purpose (hotdog: sandwich and hot dog)
    assert sorted({i for i in flat if flat.count(i) > 1}) == [NAMES.index("hotdog")]
