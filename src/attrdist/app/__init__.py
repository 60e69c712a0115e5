"""The web explorer (``attrdist serve``).

Names are imported on first use: ``AppConfig`` (what ``attrdist serve --help`` reads) without the server and its
models.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

__all__ = ["AppConfig", "Deadline", "ExplainRequest", "Explorer", "FigureRequest", "LRUCache", "UserError",
           "VarRequest", "make_server", "serve"]

_EXPORTS = {"AppConfig": "config", "LRUCache": "cache", "Deadline": "deadline", "UserError": "errors",
            "ExplainRequest": "params", "VarRequest": "params", "FigureRequest": "params", "Explorer": "explorer",
            "make_server": "server", "serve": "server"}

if TYPE_CHECKING:
    from .cache import LRUCache
    from .config import AppConfig
    from .deadline import Deadline
    from .errors import UserError
    from .explorer import Explorer
    from .params import ExplainRequest, FigureRequest, VarRequest
    from .server import make_server, serve


def __getattr__(name: str) -> object:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f".{module}", __name__), name)
