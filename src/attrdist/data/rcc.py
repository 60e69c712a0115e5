"""Read one file out of a compiled Qt resource bundle (``.rcc``), as GCompris ships its photos.

The format (Qt's ``rcc``): a header ``qres``, the format version and the offsets of three tables, a tree of
nodes (a directory lists its children, a file points into the data table), the names as UTF-16 and the data,
each blob its length then its bytes, zlib-compressed (with Qt's 4-byte length prefix) or zstd-compressed
where a flag says so. Every offset is checked against the file's size: a damaged bundle raises
:class:`RccError`, never reads out of bounds.

Example:
    >>> read_member("/nonexistent.rcc", "/a/b.webp")  # doctest: +IGNORE_EXCEPTION_DETAIL
    Traceback (most recent call last):
    attrdist.data.rcc.RccError: /nonexistent.rcc: no such file
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

__all__ = ["RccError", "read_member"]

_DIRECTORY, _ZLIB, _ZSTD = 2, 1, 4
#: A member larger than this is refused (the photos are a few hundred kB).
MAX_MEMBER_BYTES = 64 * 1024 * 1024


class RccError(ValueError):
    """The bundle is missing, damaged, or lacks the member."""


class _Bundle:
    def __init__(self, blob: bytes, where: str) -> None:
        self.b, self.where = blob, where
        if blob[:4] != b"qres" or len(blob) < 20:
            raise RccError(f"{where}: not a Qt resource bundle")
        self.version, self.tree, self.data, self.names = struct.unpack(">IIII", blob[4:20])
        if self.version not in (1, 2, 3):
            raise RccError(f"{where}: resource format version {self.version} is not supported")
        self.node_size = 14 if self.version == 1 else 22

    def _unpack(self, fmt: str, offset: int) -> tuple:
        end = offset + struct.calcsize(fmt)
        if offset < 0 or end > len(self.b):
            raise RccError(f"{self.where}: damaged (an offset points past the end)")
        return struct.unpack(fmt, self.b[offset:end])

    def name(self, node: int) -> str:
        (offset,) = self._unpack(">I", self.tree + node * self.node_size)
        (length,) = self._unpack(">H", self.names + offset)
        start = self.names + offset + 6  # length, then a 4-byte hash, then the UTF-16 name
        if start + 2 * length > len(self.b):
            raise RccError(f"{self.where}: damaged (a name runs past the end)")
        try:
            return self.b[start:start + 2 * length].decode("utf-16-be")
        except UnicodeDecodeError:
            raise RccError(f"{self.where}: damaged (a name is not UTF-16)") from None

    def flags(self, node: int) -> int:
        return self._unpack(">H", self.tree + node * self.node_size + 4)[0]

    def children(self, node: int) -> range:
        count, first = self._unpack(">II", self.tree + node * self.node_size + 6)
        return range(first, first + count)

    def content(self, node: int) -> bytes:
        (offset,) = self._unpack(">I", self.tree + node * self.node_size + 10)
        (size,) = self._unpack(">I", self.data + offset)
        start = self.data + offset + 4
        if size > MAX_MEMBER_BYTES or start + size > len(self.b):
            raise RccError(f"{self.where}: damaged or oversized member ({size} bytes)")
        raw = self.b[start:start + size]
        flags = self.flags(node)
        if flags & _ZLIB:
            d = zlib.decompressobj()
            try:
                out = d.decompress(raw[4:], MAX_MEMBER_BYTES)
            except zlib.error as err:
                raise RccError(f"{self.where}: damaged compressed member ({err})") from None
            if not d.eof:
                raise RccError(f"{self.where}: compressed member truncated or larger than {MAX_MEMBER_BYTES} bytes")
            return out
        if flags & _ZSTD:
            try:
                import zstandard
            except ImportError:
                raise RccError(f"{self.where}: the member is zstd-compressed; pip install zstandard") from None
            try:
                return zstandard.ZstdDecompressor().decompress(raw, max_output_size=MAX_MEMBER_BYTES)
            except zstandard.ZstdError as err:
                raise RccError(f"{self.where}: damaged compressed member ({err})") from None
        return raw


def read_member(bundle: str | Path, member: str) -> bytes:
    """The bytes of one file of a ``.rcc`` bundle.

    Args:
        bundle: The bundle's path.
        member: The file's path inside it (``/gcompris/src/activities/erase/resource/cheetah.webp``).

    Returns:
        The file's bytes, decompressed.

    Raises:
        RccError: If the bundle is missing or damaged or has no such member.
    """
    p = Path(bundle)
    if not p.is_file():
        raise RccError(f"{p}: no such file")
    b = _Bundle(p.read_bytes(), str(p))
    node = 0
    for part in (s for s in member.split("/") if s):
        if not b.flags(node) & _DIRECTORY:
            raise RccError(f"{p}: no member {member!r}")
        node = next((c for c in b.children(node) if b.name(c) == part), -1)
        if node < 0:
            raise RccError(f"{p}: no member {member!r}")
    if b.flags(node) & _DIRECTORY:
        raise RccError(f"{p}: {member!r} is a folder")
    return b.content(node)
