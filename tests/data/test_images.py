import numpy as np
import pytest
from PIL import Image

from attrdist.data import ImageReadError, imagenet_class_names, read_image, sample_grid, to_rgb


def test_exif_rotation(tmp_path):
    im = Image.new("RGB", (40, 20), (255, 0, 0))
    exif = Image.Exif()
    exif[0x0112] = 6
    im.save(tmp_path / "r.jpg", exif=exif)
    assert read_image(tmp_path / "r.jpg").size == (20, 40)


def test_modes():
    assert to_rgb(Image.new("L", (3, 3), 7)).mode == "RGB"
    rgba = to_rgb(Image.new("RGBA", (2, 2), (0, 0, 0, 0)))
    assert np.asarray(rgba)[0, 0].tolist() == [255, 255, 255]  # transparent over white
    arr = np.array([[0, 65535]], dtype=np.uint16)
    assert np.asarray(to_rgb(Image.fromarray(arr)))[0, :, 0].tolist() == [0, 255]


def test_errors(tmp_path):
    (tmp_path / "x.png").write_text("nope")
    with pytest.raises(ImageReadError, match="not an image"):
        read_image(tmp_path / "x.png")
    with pytest.raises(ImageReadError, match="no such file"):
        read_image(tmp_path / "y.png")


def test_class_names_and_grid():
    names, wnids = imagenet_class_names()
    assert len(names) == len(wnids) == 1000 and names[285] == "Egyptian cat" and wnids[0] == "n01440764"
    assert sample_grid(cell=32).size == (64, 64)
    with pytest.raises(ValueError, match="square number"):
        sample_grid(("chelsea", "coffee", "rocket"))


def test_a_thin_strip_is_refused_before_any_resize(tmp_path):
    # 4 x 12,500 pixels is small, but resizing its short side to 256 would make 256 x 800,000
    Image.new("RGB", (4, 12_500)).save(tmp_path / "strip.png")
    with pytest.raises(ImageReadError, match="more elongated than 100:1"):
        read_image(tmp_path / "strip.png")
    Image.new("RGB", (4, 400)).save(tmp_path / "ok.png")
    assert read_image(tmp_path / "ok.png").size == (4, 400)


def test_a_folder_is_named_as_a_folder(tmp_path):
    from attrdist.data import ImageReadError, read_image

    with pytest.raises(ImageReadError, match="a folder, not an image"):
        read_image(tmp_path)
