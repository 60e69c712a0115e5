"""The ``photos`` dataset kind on a made-up photo list (the real packages need not be installed)."""

import json

import numpy as np
import pytest
from PIL import Image

from attrdist.data.kinds import open_dataset
from attrdist.data.kinds.photos import MissingPhotosError, PhotosDataset, read_manifest


def _entry(i, label, package="pkg-a"):
    return {"id": f"{package}/p{i}", "source": "debian", "package": package,
            "path": f"/usr/share/{package}/p{i}.png", "label": label, "label_name": f"class {label}",
            "licence": "GPL-2+"}


def _install(root, entries, wide=False):
    for n, e in enumerate(entries):
        f = root / e["package"] / e["path"].lstrip("/")
        f.parent.mkdir(parents=True, exist_ok=True)
        size = (60, 30) if wide else (40, 40)
        Image.fromarray(np.full((size[1], size[0], 3), 10 * n, dtype=np.uint8)).save(f)


def _manifest(tmp_path, entries):
    m = tmp_path / "photos.json"
    m.write_text(json.dumps({"photos": entries}))
    return m


def test_images_labels_and_grids(tmp_path):
    entries = [_entry(i, label) for i, label in enumerate([1, 1, 2, 3, 4, 5])]
    _install(tmp_path / "root", entries, wide=True)
    ds = PhotosDataset(roots=(tmp_path / "root",), manifest=_manifest(tmp_path, entries))
    images = ds.images()
    assert sorted(i.id for i in images) == sorted(e["id"] for e in entries)
    assert {i.id: i.label for i in images} == {e["id"]: e["label"] for e in entries}
    grids = ds.grids(2, 20, seed=3, classify=None)
    assert len(grids) == 20 and grids == ds.grids(2, 20, seed=3, classify=None)
    for g in grids:
        assert len(set(g.classes)) == 4  # four distinct classes: the class set is the grid's classes
        for item, cls in zip(g.items, g.classes, strict=True):
            assert {e["id"]: e["label"] for e in entries}[item.partition("~")[0]] == cls
    cell = ds.grid_image(grids[0].items[0])
    assert cell.size == (60, 60)  # padded to a square, the whole photo kept
    assert np.asarray(cell)[0, 0].tolist() == [255, 255, 255]
    flipped = next(i for g in grids for i in g.items if i.endswith("~flip"))
    a, b = np.asarray(ds.grid_image(flipped.partition("~")[0])), np.asarray(ds.grid_image(flipped))
    assert np.array_equal(a[:, ::-1], b)


def test_missing_packages_are_named_with_install_command(tmp_path):
    entries = [_entry(i, i, "pkg-a") for i in range(4)] + [_entry(9, 9, "pkg-missing")]
    _install(tmp_path / "root", entries[:4])
    with pytest.warns(UserWarning, match="apt-get install pkg-missing"):
        ds = PhotosDataset(roots=(tmp_path / "root",), manifest=_manifest(tmp_path, entries))
    assert len(ds.images()) == 4
    with pytest.raises(MissingPhotosError, match="(?s)0 of the 5 listed photos.*apt-get install pkg-a"):
        PhotosDataset(roots=(tmp_path / "nothing",), manifest=_manifest(tmp_path, entries))


def test_too_few_classes_for_a_grid(tmp_path):
    entries = [_entry(i, label) for i, label in enumerate([1, 1, 2, 3])]
    _install(tmp_path, entries)
    ds = PhotosDataset(roots=(tmp_path,), manifest=_manifest(tmp_path, entries))
    with pytest.raises(MissingPhotosError, match="needs 4 classes"):
        ds.grids(2, 4, 0, None)


@pytest.mark.parametrize("bad", [{"source": "web"}, {"label": 1000}, {"colour": "red"}, {"label": "1"},
                                 {"path": "../../etc/passwd"}, {"source": "pypi", "path": "/etc/passwd"}])
def test_malformed_list(tmp_path, bad):
    with pytest.raises(ValueError, match="entry 0"):
        read_manifest(_manifest(tmp_path, [_entry(0, 1) | bad]))


def test_shipped_list_is_valid():
    photos = read_manifest()
    assert len(photos) >= 30 and len({p.label for p in photos}) >= 20
    assert all(p.licence and p.package and p.path for p in photos)


def test_kind_opens_installed_photos_or_names_the_packages(tmp_path):
    try:
        ds = open_dataset(f"photos:{tmp_path}", needs="grids")
    except MissingPhotosError as err:  # a machine without the packages: told what to install
        assert "apt-get install" in str(err)
    else:
        assert len(ds.images()) >= 4


def test_photo_inside_a_resource_bundle(tmp_path, rcc_bundle):
    import io


    buf = io.BytesIO()
    Image.fromarray(np.full((8, 12, 3), 77, dtype=np.uint8)).save(buf, format="PNG")
    root = tmp_path / "root"
    (root / "pkg-a/usr/share/pkg-a").mkdir(parents=True)
    (root / "pkg-a/usr/share/pkg-a/r.rcc").write_bytes(rcc_bundle({"p.png": buf.getvalue()}, compress={"p.png"}))
    entries = [_entry(i, i) for i in range(4)]
    _install(root, entries)
    entries.append(_entry(9, 9) | {"id": "in-bundle", "path": "/usr/share/pkg-a/r.rcc", "member": "/res/p.png"})
    ds = PhotosDataset(roots=(root,), manifest=_manifest(tmp_path, entries))
    im = ds.image("in-bundle").load()
    assert im.size == (12, 8) and np.asarray(im)[0, 0].tolist() == [77, 77, 77]
