"""Input files checked without importing anything heavy.

A wrong path on the command line fails before torch loads.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["file_problem"]


def file_problem(path: str | Path, what: str = "image") -> str | None:
    """The one-line reason ``path`` cannot be read as a ``what`` file, or ``None`` for a non-empty file.

    Example:
        >>> file_problem("/no/such/photo.jpg")
        '/no/such/photo.jpg: no such file'
        >>> file_problem("/")
        '/: a folder, not an image (give the image files, e.g. /*.jpg)'
    """
    p = Path(path)
    if p.is_dir():
        return f"{p}: a folder, not an {what} (give the {what} files, e.g. {str(p).rstrip('/')}/*.jpg)"
    if not p.is_file():
        return f"{p}: no such file"
    if p.stat().st_size == 0:
        return f"{p}: the file is empty"
    return None
