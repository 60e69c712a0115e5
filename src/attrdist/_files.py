"""Writing an output file safely: a new file beside the name, then renamed over it (imports nothing of attrdist).

A run folder, a report folder or an ``--out`` folder may come from someone else. Writing ``open(path, "w")`` there
follows a symbolic link (and writes wherever it points), writes into every other name of a hard-linked file, and
blocks forever on a FIFO. Every output of attrdist is written here instead: into a new temporary file in the
target folder (created exclusively, so never through a link), then renamed over the name (:func:`os.replace`), which
replaces whatever was there (a link, a hard link, a FIFO) without opening it. A reader sees the old file or the
whole new one, never a half-written one.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Literal, overload

__all__ = ["atomic_open", "write_bytes_atomic", "write_text_atomic"]


def _new_file(path: Path) -> tuple[int, Path]:
    """A new, empty file beside ``path`` (mode ``0o666`` less the umask), open for writing, and its name."""
    for _ in range(100):
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
        try:
            return os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666), tmp
        except FileExistsError:
            continue
    raise FileExistsError(f"{path.parent}: cannot create a temporary file for {path.name}")


@overload
def atomic_open(path: str | Path, mode: Literal["w"] = "w", *, encoding: str = "utf-8",
                newline: str | None = None) -> contextlib.AbstractContextManager[IO[str]]: ...
@overload
def atomic_open(path: str | Path, mode: Literal["wb"], *, encoding: str = "utf-8",
                newline: str | None = None) -> contextlib.AbstractContextManager[IO[bytes]]: ...
def atomic_open(path: str | Path, mode: Literal["w", "wb"] = "w", *, encoding: str = "utf-8",
                newline: str | None = None) -> contextlib.AbstractContextManager[IO[str]] | \
        contextlib.AbstractContextManager[IO[bytes]]:
    """Open ``path`` for writing through a new temporary file that replaces ``path`` when the block ends.

    Nothing at ``path`` is opened or followed: a symbolic link, a hard link or a FIFO there is replaced by the new
    file. If the block raises, ``path`` is left as it was and the temporary file is removed.

    Args:
        path: The file to write.
        mode: ``"w"`` (text) or ``"wb"`` (bytes).
        encoding: The text encoding (text mode).
        newline: As for :func:`open` (``""`` for the :mod:`csv` module).

    Returns:
        A context manager giving the open file.

    Example:
        >>> import tempfile, pathlib
        >>> with tempfile.TemporaryDirectory() as d, atomic_open(pathlib.Path(d) / "a.txt") as f:
        ...     _ = f.write("hello")
    """
    return _atomic(Path(path), mode, encoding, newline)


@contextlib.contextmanager
def _atomic(path: Path, mode: str, encoding: str, newline: str | None) -> Iterator[IO]:
    """:func:`atomic_open`'s body."""
    fd, tmp = _new_file(path)
    try:
        with (os.fdopen(fd, "wb") if mode == "wb" else
              os.fdopen(fd, "w", encoding=encoding, newline=newline)) as f:
            yield f
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def write_bytes_atomic(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` through :func:`atomic_open` (a link or FIFO there is replaced, never followed).

    Returns:
        ``path``.
    """
    with atomic_open(path, "wb") as f:
        f.write(data)
    return Path(path)


def write_text_atomic(path: str | Path, text: str, encoding: str = "utf-8") -> Path:
    """Write ``text`` to ``path`` through :func:`atomic_open` (a link or FIFO there is replaced, never followed).

    Returns:
        ``path``.
    """
    with atomic_open(path, "w", encoding=encoding) as f:
        f.write(text)
    return Path(path)
