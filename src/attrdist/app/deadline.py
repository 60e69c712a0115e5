"""What one request may still spend: a deadline and a connected client, in an object the request owns.

The HTTP handler makes one :class:`Deadline` per request and passes it down, explicitly, to where the work waits or
runs: the job queue checks it while a request waits for a worker, and :meth:`Deadline.watch` makes every forward of
the model, and every gradient that flows back through one of its modules, check it while the request's attribution
runs (so a method that computes K class gradients after one forward stops between them, and within one). Nothing is
kept per thread.
"""

from __future__ import annotations

import contextlib
import math
import select
import socket
import time
from collections.abc import Iterator
from http import HTTPStatus

import torch

from .errors import ClientGone, TimeUp

__all__ = ["Deadline"]

#: How often, at most, the client's end of the connection is looked at (seconds).
PEEK_INTERVAL = 0.2


class Deadline:
    """A request's time limit and its client, checked by :meth:`check`.

    Args:
        timeout: Seconds the request may take from now; 0: no limit.
        connection: The request's socket (read whole), looked at for a client that left; ``None``: not looked at.

    Example:
        >>> Deadline().check()  # no limit and no client: never stops
    """

    def __init__(self, timeout: float = 0.0, connection: socket.socket | None = None) -> None:
        self.timeout = timeout
        self.deadline = time.monotonic() + timeout if timeout > 0 else math.inf
        self._connection = connection
        self._next_peek = 0.0

    def check(self) -> None:
        """Return if the request may go on.

        Raises:
            TimeUp: Once the time is up (answered 422).
            ClientGone: Once the client has closed its connection.
        """
        now = time.monotonic()
        if now > self.deadline:
            raise TimeUp(f"the request took longer than this server's limit of {self.timeout:g} s (explain fewer "
                         "classes or methods, or start the server with a larger --request-timeout)",
                         HTTPStatus.UNPROCESSABLE_ENTITY)
        if self._connection is None or now < self._next_peek:
            return
        self._next_peek = now + PEEK_INTERVAL
        if self._client_left(self._connection):
            raise ClientGone("the client disconnected")

    @staticmethod
    def _client_left(connection: socket.socket) -> bool:
        """Whether the client closed its end (the request was read whole: anything readable now is the close)."""
        try:
            readable = select.select([connection], [], [], 0)[0]
            return bool(readable) and connection.recv(1, socket.MSG_PEEK) == b""
        except (OSError, ValueError):
            return True

    @contextlib.contextmanager
    def watch(self, model: torch.nn.Module) -> Iterator[None]:
        """Every module of ``model`` checks this deadline before its forward and when a gradient reaches its output.

        The gradient checks are hooks on the output tensors of the forwards run inside the block (a tensor hook
        returns nothing, so it changes no gradient): the class gradients a method computes after its forward, one
        backward pass per class or one batched pass, stop at the next module once the time is up or the client
        left. The module hooks are removed when the block ends, also after an exception (the model is shared between
        requests: the caller holds the model's lock for the block); the tensor hooks live and die with the block's
        tensors, and check nothing once the block has ended.
        """
        watching = True

        def before(module: torch.nn.Module, args: tuple[object, ...]) -> None:
            self.check()

        def on_gradient(grad: torch.Tensor) -> None:
            if watching:
                self.check()

        def after(module: torch.nn.Module, args: tuple[object, ...], output: object) -> None:
            if isinstance(output, torch.Tensor) and output.requires_grad:
                output.register_hook(on_gradient)

        handles = [m.register_forward_pre_hook(before) for m in model.modules()]
        handles += [m.register_forward_hook(after) for m in model.modules()]
        try:
            yield
        finally:
            watching = False
            for h in handles:
                h.remove()
