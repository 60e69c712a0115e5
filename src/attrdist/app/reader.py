"""Reading a request against the clock: a socket reader with a deadline, so that a slow client cannot hold a thread.

Each read from the socket waits at most until the reader's deadline (and at most ``per_read`` seconds): the server
arms it for the request line and headers, and again for the body, and the client that trickles its bytes is stopped
when the deadline passes, not only when a single read waits too long.
"""

from __future__ import annotations

import io
import math
import socket
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer

__all__ = ["DeadlineReader"]


class DeadlineReader(io.RawIOBase):
    """The raw bytes of a socket, each read bounded by a deadline the caller sets with :meth:`arm`.

    Args:
        connection: The connected socket (not closed by this reader: the server closes it).
        per_read: The longest one read may wait, in seconds.

    Attributes:
        received: Bytes read since the last :meth:`arm`.
        expired: Whether a read stopped because the deadline (or ``per_read``) passed since the last :meth:`arm`.
    """

    def __init__(self, connection: socket.socket, per_read: float) -> None:
        super().__init__()
        self._connection = connection
        self._per_read = per_read
        self._deadline = math.inf
        self.limit = 0.0
        self.received = 0
        self.expired = False

    def arm(self, seconds: float) -> None:
        """Allow ``seconds`` from now for the reads that follow (``math.inf``: only ``per_read`` bounds each)."""
        self._deadline = time.monotonic() + seconds
        self.limit = seconds
        self.received = 0
        self.expired = False

    def readable(self) -> bool:
        """Always: the reader reads."""
        return True

    def readinto(self, buffer: WriteableBuffer, /) -> int:
        """Read into ``buffer`` what arrives before the deadline.

        Raises:
            TimeoutError: Once the deadline has passed (``expired`` is then set).
        """
        remaining = self._deadline - time.monotonic()
        if remaining <= 0:
            self.expired = True
            raise TimeoutError("the request took too long to arrive")
        self._connection.settimeout(min(self._per_read, remaining))
        try:
            n = self._connection.recv_into(buffer)
        except TimeoutError:
            self.expired = True
            raise
        finally:
            self._connection.settimeout(self._per_read)  # writes wait as long as reads
        self.received += n
        return n
