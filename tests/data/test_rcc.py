"""The Qt resource bundle reader on bundles written here byte by byte (Qt's rcc layout), and damaged ones."""

import struct

import pytest

from attrdist.data.rcc import RccError, read_member


@pytest.mark.parametrize("version", [1, 2, 3])
def test_reads_plain_and_zlib_members(tmp_path, version, rcc_bundle):
    files = {"a.webp": b"RIFF....WEBPplain", "b.png": b"\x89PNG" + bytes(range(200)) * 3}
    f = tmp_path / "x.rcc"
    f.write_bytes(rcc_bundle(files, version, compress={"b.png"}))
    assert read_member(f, "/res/a.webp") == files["a.webp"]
    assert read_member(f, "res/b.png") == files["b.png"]
    with pytest.raises(RccError, match="no member"):
        read_member(f, "/res/c.png")
    with pytest.raises(RccError, match="folder"):
        read_member(f, "/res")


@pytest.mark.parametrize("damage", ["magic", "truncated", "offset"])
def test_damaged_bundles(tmp_path, damage, rcc_bundle):
    blob = bytearray(rcc_bundle({"a.webp": b"x" * 100}))
    if damage == "magic":
        blob[:4] = b"nope"
    elif damage == "truncated":
        blob = blob[:40]
    else:
        struct.pack_into(">I", blob, 8, 10**9)  # the tree table far past the end
    f = tmp_path / "x.rcc"
    f.write_bytes(bytes(blob))
    with pytest.raises(RccError):
        read_member(f, "/res/a.webp")


@pytest.mark.parametrize("damage", ["zlib", "zlib-truncated", "name"])
def test_damaged_members_are_rcc_errors(tmp_path, damage, rcc_bundle):
    blob = bytearray(rcc_bundle({"a.png": bytes(range(256)) * 8}, compress={"a.png"}))
    i = blob.index(struct.pack(">I", 256 * 8)) + 4  # Qt's length prefix, then the zlib stream
    if damage == "zlib":
        blob[i:i + 2] = b"\xff\xff"  # not a zlib header
    elif damage == "zlib-truncated":
        (size,) = struct.unpack(">I", blob[i - 8:i - 4])
        struct.pack_into(">I", blob, i - 8, size - 10)  # the stream cut short
    else:
        j = blob.index("a.png".encode("utf-16-be"))
        blob[j:j + 2] = b"\xd8\x00"  # a lone surrogate: not UTF-16
    f = tmp_path / "x.rcc"
    f.write_bytes(bytes(blob))
    with pytest.raises(RccError, match="damaged|truncated"):
        read_member(f, "/res/a.png")
