"""Heavy libraries imported on first use, so that ``import attrdist.bench`` and every ``--help`` stay fast.

``torch = lazy("torch")`` binds a stand-in that imports the real module (an ordinary, complete import) the first
time one of its attributes is read, and hands every attribute over from then on. Modules on the command line's
help path (configurations, registries, metrics, VAR) use it instead of ``import torch``; annotations name the
types under ``TYPE_CHECKING``. A module whose top level needs the library (an ``nn.Module`` subclass) imports it
as usual: the help path never imports such a module.

Example:
    >>> np_ = lazy("numpy")
    >>> int(np_.arange(3).sum())
    3
"""

from __future__ import annotations

import importlib
import types

__all__ = ["lazy"]


class _Lazy(types.ModuleType):
    """A module that is imported when an attribute is first read."""

    def __getattr__(self, attr: str) -> object:
        module = importlib.import_module(self.__name__)
        value = getattr(module, attr)
        return value

    def __repr__(self) -> str:
        return f"<lazy module {self.__name__!r}>"


def lazy(name: str) -> types.ModuleType:
    """A stand-in for module ``name`` that imports it on first attribute access."""
    return _Lazy(name)
