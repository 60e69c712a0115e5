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


def test_formats_that_decode_while_opening_are_refused_before_any_decode():
    """Issue 22, item 2: Pillow decodes an ICO's embedded PNG inside Image.open, before any size check could refuse
    it; such formats are not read at all (the message lists those that are)."""
    import io
    import time

    from PIL import Image

    from attrdist.data.images import FORMATS, ImageReadError, read_image_bytes

    frame = io.BytesIO()
    Image.new("RGB", (4000, 4000)).save(frame, "PNG")  # 16 megapixels, a few kB compressed
    ico = io.BytesIO()
    Image.new("RGB", (16, 16)).save(ico, "ICO", sizes=[(16, 16)])
    data = bytearray(ico.getvalue())
    # point the ICO's one directory entry at the big PNG (what the red team's 657 kB file did at 13000x13000)
    offset = len(data)
    data[6 + 8:6 + 12] = len(frame.getvalue()).to_bytes(4, "little")
    data[6 + 12:6 + 16] = offset.to_bytes(4, "little")
    data += frame.getvalue()
    start = time.perf_counter()
    with pytest.raises(ImageReadError, match="not an image file in a format read here"):
        read_image_bytes(bytes(data), max_pixels=1_000_000)
    assert time.perf_counter() - start < 0.5
    assert "ICO" not in FORMATS and "PNG" in FORMATS
    for fmt in ("PNG", "JPEG", "GIF", "BMP", "WEBP", "TIFF"):  # what people upload still reads
        buf = io.BytesIO()
        Image.new("RGB", (20, 10), (9, 99, 199)).save(buf, fmt)
        assert read_image_bytes(buf.getvalue()).size == (20, 10), fmt
