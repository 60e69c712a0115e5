"""The explorer's errors: what a request got wrong, and why a request was stopped (a light module, no torch)."""

from __future__ import annotations

from collections.abc import Mapping
from http import HTTPStatus

__all__ = ["ClientGone", "TimeUp", "UserError"]


class UserError(ValueError):
    """A request the user can fix; its message is shown in the page.

    Args:
        message: What was wrong, in the page's words.
        status: The HTTP status of the answer (a 4xx).
        headers: Extra headers of the answer (``Retry-After``).
    """

    def __init__(self, message: str, status: int = HTTPStatus.BAD_REQUEST,
                 headers: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.headers: dict[str, str] = dict(headers or {})


class TimeUp(UserError):
    """A request ran past the operator's ``--request-timeout``."""


class ClientGone(ConnectionError):
    """The client closed its connection while its request was waiting or running."""
