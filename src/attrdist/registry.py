"""A name -> factory registry, the single list behind the CLI choices, docs and contract tests."""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

__all__ = ["Registry"]

T = TypeVar("T")


class Registry(Generic[T]):
    """Named entries registered with a decorator (timm's ``register_model`` pattern).

    Args:
        kind: What the entries are ("method", "model", ...), used in error messages.

    Example:
        >>> METHODS = Registry("method")
        >>> @METHODS.register("plain")
        ... class Plain: ...
        >>> METHODS.get("plain").__name__
        'Plain'
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        """Register the decorated object under ``name``.

        Args:
            name: The public name.

        Returns:
            The decorator, which returns the object unchanged.

        Raises:
            ValueError: If the name is taken.
        """

        def decorate(obj: T) -> T:
            if name in self._entries:
                raise ValueError(f"{self.kind} {name!r} is already registered")
            self._entries[name] = obj
            return obj

        return decorate

    def get(self, name: str) -> T:
        """Look an entry up by name.

        Args:
            name: The registered name.

        Returns:
            The entry.

        Raises:
            KeyError: If the name is unknown; the message lists the closest names.
        """
        try:
            return self._entries[name]
        except KeyError:
            close = difflib.get_close_matches(name, self._entries, n=3)
            hint = f" Did you mean {', '.join(close)}?" if close else ""
            raise KeyError(
                f"unknown {self.kind} {name!r}.{hint} Available: {', '.join(sorted(self._entries))}"
            ) from None

    def remove(self, name: str) -> T:
        """Unregister an entry (plugins that reload, tests) and return it.

        Raises:
            KeyError: If the name is unknown.
        """
        self.get(name)
        return self._entries.pop(name)

    def names(self) -> list[str]:
        """Return the registered names in registration order."""
        return list(self._entries)

    def items(self) -> Iterator[tuple[str, T]]:
        """Iterate over ``(name, entry)`` pairs in registration order."""
        return iter(self._entries.items())

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __len__(self) -> int:
        return len(self._entries)
