"""The explorer's job queue: bounded work at once, bounded waiting, identical jobs computed once."""

from __future__ import annotations

import threading
from collections.abc import Callable
from http import HTTPStatus
from typing import TypeVar

from .deadline import Deadline
from .errors import UserError

__all__ = ["Jobs"]

T = TypeVar("T")

#: How long a waiting request sleeps between two looks at its deadline (seconds).
WAIT_STEP = 0.2


class Jobs:
    """At most ``workers`` jobs at once and ``queue`` waiting; identical jobs share one computation.

    Args:
        workers: Jobs run at once.
        queue: Jobs that may wait for a worker; more are answered 503 with ``Retry-After``.
    """

    def __init__(self, workers: int, queue: int) -> None:
        self._slots = threading.BoundedSemaphore(workers)
        self._workers = workers
        self._lock = threading.Lock()
        self._waiting = 0
        self._queue = queue
        self._inflight: dict[str, threading.Event] = {}
        self.running = 0

    @property
    def waiting(self) -> int:
        """Jobs waiting for a worker."""
        return self._waiting

    def run(self, key: str, compute: Callable[[], T], lookup: Callable[[], T | None], deadline: Deadline) -> T:
        """``lookup()`` if cached, else wait for an identical job in flight, else ``compute()`` in a slot.

        Args:
            key: What identifies the job (equal keys: the same result).
            compute: Computes the result (and caches it where ``lookup`` finds it).
            lookup: The cached result, or ``None``.
            deadline: The request's; checked while it waits, and before it computes.

        Raises:
            UserError: 503 if the queue is full.
        """
        while True:
            found, event, mine = self._claim(key, lookup)
            if found is not None:
                return found
            if not mine:
                while not event.wait(WAIT_STEP):
                    deadline.check()
                continue  # the result is cached now (or the job failed: compute it here)
            try:
                return self._compute(compute, deadline)
            finally:
                with self._lock:
                    self._inflight.pop(key, None)
                event.set()

    def _claim(self, key: str, lookup: Callable[[], T | None]) -> tuple[T | None, threading.Event, bool]:
        """The cached result; or the event of the job in flight, and whether this request runs it (then it waits)."""
        with self._lock:
            found = lookup()
            if found is not None:
                return found, threading.Event(), False
            event = self._inflight.get(key)
            if event is not None:
                return None, event, False
            if self._waiting >= self._queue + max(0, self._workers - self.running):
                raise UserError("the explorer is busy; try again in a few seconds", HTTPStatus.SERVICE_UNAVAILABLE,
                                {"Retry-After": "5"})
            event = self._inflight[key] = threading.Event()
            self._waiting += 1
            return None, event, True

    def _compute(self, compute: Callable[[], T], deadline: Deadline) -> T:
        """Wait for a worker (counted as waiting), then run ``compute`` (counted as running)."""
        try:
            while not self._slots.acquire(timeout=WAIT_STEP):
                deadline.check()
        except BaseException:
            with self._lock:
                self._waiting -= 1
            raise
        try:
            with self._lock:
                self._waiting -= 1
                self.running += 1
            try:
                deadline.check()
                return compute()
            finally:
                with self._lock:
                    self.running -= 1
        finally:
            self._slots.release()
