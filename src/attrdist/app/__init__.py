"""The web explorer (``attrdist serve``)."""

from .cache import LRUCache
from .server import AppConfig, Explorer, make_server, serve

__all__ = ["AppConfig", "Explorer", "LRUCache", "make_server", "serve"]
