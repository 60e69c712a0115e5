"""The web explorer (``attrdist serve``).

Names are imported on first use: ``AppConfig`` (what ``attrdist serve --help`` reads) without the server and its
models.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

__all__ = ["AppConfig", "Explorer", "LRUCache", "make_server", "serve"]

_EXPORTS = {"AppConfig": "config", "LRUCache": "cache", "Explorer": "server", "make_server": "server",
            "serve": "server"}

if TYPE_CHECKING:
    from .cache import LRUCache
    from .config import AppConfig
    from .server import Explorer, make_server, serve


def __getattr__(name: str) -> object:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f".{module}", __name__), name)
