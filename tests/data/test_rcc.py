"""The Qt resource bundle reader on bundles written here byte by byte (Qt's rcc layout), and damaged ones."""

import struct
import zlib

import pytest

from attrdist.data.rcc import RccError, read_member


def _bundle(files, version=2, compress=()):
    """A bundle with one folder ``/res`` holding ``files`` (name -> bytes); names in ``compress`` zlib'd."""
    names, data = b"", b""
    name_off = {}
    for n in ["res", *files]:
        name_off[n] = len(names)
        names += struct.pack(">HI", len(n), 0) + n.encode("utf-16-be")
    data_off = {}
    for n, blob in files.items():
        stored = struct.pack(">I", len(blob)) + zlib.compress(blob) if n in compress else blob
        data_off[n] = len(data)
        data += struct.pack(">I", len(stored)) + stored
    pad = b"\0" * 8 if version >= 2 else b""

    def node_dir(name_offset, count, first):
        return struct.pack(">IHII", name_offset, 2, count, first) + pad

    def node_file(name_offset, flags, offset):
        return struct.pack(">IHHHI", name_offset, flags, 0, 0, offset) + pad

    tree = node_dir(0, 1, 1) + node_dir(name_off["res"], len(files), 2)
    for n in files:
        tree += node_file(name_off[n], 1 if n in compress else 0, data_off[n])
    header = 20 + (4 if version >= 3 else 0)
    tree_at, data_at = header, header + len(tree)
    names_at = data_at + len(data)
    head = b"qres" + struct.pack(">IIII", version, tree_at, data_at, names_at)
    head += struct.pack(">I", 0) if version >= 3 else b""
    return head + tree + data + names


@pytest.mark.parametrize("version", [1, 2, 3])
def test_reads_plain_and_zlib_members(tmp_path, version):
    files = {"a.webp": b"RIFF....WEBPplain", "b.png": b"\x89PNG" + bytes(range(200)) * 3}
    f = tmp_path / "x.rcc"
    f.write_bytes(_bundle(files, version, compress={"b.png"}))
    assert read_member(f, "/res/a.webp") == files["a.webp"]
    assert read_member(f, "res/b.png") == files["b.png"]
    with pytest.raises(RccError, match="no member"):
        read_member(f, "/res/c.png")
    with pytest.raises(RccError, match="folder"):
        read_member(f, "/res")


@pytest.mark.parametrize("damage", ["magic", "truncated", "offset"])
def test_damaged_bundles(tmp_path, damage):
    blob = bytearray(_bundle({"a.webp": b"x" * 100}))
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
def test_damaged_members_are_rcc_errors(tmp_path, damage):
    blob = bytearray(_bundle({"a.png": bytes(range(256)) * 8}, compress={"a.png"}))
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
