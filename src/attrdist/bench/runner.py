"""The benchmark runner: sharded over processes (torchrun), resumable, with a progress bar, keeping the device busy.

Items are assigned to ranks round-robin by their position in the (deterministic) item list; each rank
skips the items its store already holds, so a killed run started again with the same command continues
where it stopped, and ``torchrun --nproc_per_node N`` gives the same rows as one process.

While the model works on one batch, worker processes (``workers``) decode and compose the next items, and a
background thread writes finished items to the store, a batch (or whatever has finished meanwhile) in one
transaction: a kill loses at most the items not yet written, which the next run computes again (none is stored
twice).

The progress bar shows the rate and the time left; a benchmark moves it within an item (:class:`Progress`: per
method, per randomisation depth), so that a long item shows what it is doing.
"""

from __future__ import annotations

import math
import os
import queue
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, cast

from .records import ItemResult, Skip, SkippedItem
from .store import ResultStore, StoredItem

__all__ = ["Progress", "Shard", "current_shard", "duration_text", "run_batches", "run_items"]


def duration_text(seconds: float) -> str:
    """A duration as ``"2 d 14 h"``, ``"3 h 05 min"``, ``"4 min 10 s"`` or ``"12 s"``.

    The one way progress lines, estimates and the study's total write a duration.
    """
    s = int(round(seconds))
    if s >= 86400:
        return f"{s // 86400} d {s % 86400 // 3600} h"
    if s >= 3600:
        return f"{s // 3600} h {s % 3600 // 60:02d} min"
    return f"{s // 60} min {s % 60:02d} s" if s >= 60 else f"{s} s"


class Progress:
    """The progress of a run: items, the rate and the time left, moved within an item too.

    On a terminal it is a bar. Where standard error is a log (a file, a pipe, a batch job), it prints a plain
    line with the rate and the time left at most every ``ATTRDIST_LOG_INTERVAL`` seconds (default 60) and when
    the run ends: a bar's carriage returns would make one endless line there.

    A benchmark calls :meth:`step` as parts of its current items finish (a method's maps, a randomisation depth):
    the progress moves by that share of an item and shows what just finished; the runner completes the batch.
    """

    def __init__(self) -> None:
        self.bar: Any = None
        self.moved = 0.0
        self._log: dict[str, Any] | None = None

    def open(self, todo: int, total: int, desc: str) -> None:
        """Show the progress (``total`` items, ``todo`` of them left)."""
        self.moved = 0.0
        if not sys.stderr.isatty():
            now = time.monotonic()
            self._log = {"desc": desc, "total": total, "start": total - todo, "n": float(total - todo), "t0": now,
                         "last": now, "what": "",
                         "every": env_number("ATTRDIST_LOG_INTERVAL", 60.0, 0.0, float)}
            return
        from tqdm import tqdm

        self.bar = tqdm(total=total, initial=total - todo, unit="item", file=sys.stderr, dynamic_ncols=True, desc=desc,
                        bar_format="{l_bar}{bar}| {n:.1f}/{total} [{elapsed}<{remaining}, {rate_fmt}{postfix}]")

    def _move(self, items: float, what: str = "") -> None:
        if self.bar is not None:
            if what:
                self.bar.set_postfix_str(what, refresh=False)
            self.bar.update(items)
        elif self._log is not None:
            log = self._log
            log["n"] += items
            log["what"] = what or log["what"]
            if time.monotonic() - log["last"] >= log["every"]:
                self._line()

    def _line(self) -> None:
        log = self._log
        if log is None:
            return
        now = time.monotonic()
        log["last"] = now
        done, elapsed = log["n"] - log["start"], now - log["t0"]
        rate = done / elapsed if elapsed > 0 else 0.0
        left = f"{duration_text((log['total'] - log['n']) / rate)} left" if rate > 0 else "time left unknown"
        what = f" (last: {log['what']})" if log["what"] else ""
        print(f"{log['desc']}: {log['n']:.1f}/{log['total']} items, {rate * 3600:,.0f} items/h, "
              f"{duration_text(elapsed)} elapsed, {left}{what}", file=sys.stderr, flush=True)

    def step(self, items: float, what: str = "") -> None:
        """Move the progress by ``items`` (a share of the current batch) and show ``what`` just finished."""
        self.moved += items
        self._move(items, what)

    def finish(self, items: int) -> None:
        """The current batch of ``items`` items is done: move the progress to its end."""
        self._move(items - self.moved)
        self.moved = 0.0

    def close(self) -> None:
        """Close the bar (or print the last line)."""
        if self.bar is not None:
            self.bar.close()
        elif self._log is not None and self._log["n"] > self._log["start"]:
            self._line()
        self._log = None


@dataclass(frozen=True)
class Shard:
    """This process's part of the work."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    def device(self, requested: str) -> str:
        """The device of this rank: ``cuda:<local_rank>`` when CUDA is requested, else ``requested``."""
        return f"cuda:{self.local_rank}" if requested == "cuda" else requested


def env_number(name: str, default: float, low: float, kind: type[int] | type[float] = int) -> float:
    """An environment variable as a number ``>= low`` (``default`` when unset or empty).

    Raises:
        ValueError: Naming the variable, when it is not a (finite) number or is below ``low``.
    """
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = kind(raw)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value < low:
        what = "a whole number" if kind is int else "a number"
        raise ValueError(f"environment variable {name}={raw!r}: expected {what} >= {low:g}")
    return value


def current_shard() -> Shard:
    """The shard from torchrun's environment (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``); one process otherwise.

    Raises:
        ValueError: Naming the variable, if one is not a whole number in range, or ``RANK`` is not below
            ``WORLD_SIZE`` (a stale ``RANK`` left in the shell would otherwise compute nothing and succeed).
    """
    rank, world = int(env_number("RANK", 0, 0)), int(env_number("WORLD_SIZE", 1, 1))
    if rank >= world:
        raise ValueError(f"environment variables RANK={rank} and WORLD_SIZE={world}: RANK must be below WORLD_SIZE "
                         "(a stale RANK? unset it, or start the processes with torchrun)")
    return Shard(rank, world, int(env_number("LOCAL_RANK", 0, 0)))


def barrier(shard: Shard) -> None:
    """Wait until every process of the run gets here (nothing to wait for in a single process)."""
    if shard.world < 2:
        return
    import torch
    import torch.distributed as dist

    if not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() and os.environ.get("ATTRDIST_NCCL") else "gloo")
    dist.barrier()


class _Writer:
    """Writes finished items to the store from a background thread, in the order they finish.

    What has finished when the thread gets to it (a batch, or several) goes into one transaction.
    """

    def __init__(self, store: ResultStore, rank: int) -> None:
        self.store, self.rank = store, rank
        self.queue: queue.Queue = queue.Queue(maxsize=256)
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="attrdist-writer", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        stop = False
        while not stop:
            jobs = [self.queue.get()]
            while jobs[-1] is not None and not self.queue.empty():
                jobs.append(self.queue.get_nowait())
            stop = jobs[-1] is None
            if self.error is not None:
                continue
            items: list[StoredItem] = []
            skipped: list[SkippedItem] = []
            for item, out, seconds in (job for batch in jobs if batch is not None for job in batch):
                if isinstance(out, Skip):
                    skipped.append(SkippedItem(item, out.reason))
                else:
                    items.append(StoredItem(item, out, seconds, self.rank))
            try:
                self.store.write_items(items, skipped)
            except BaseException as err:  # noqa: BLE001 - re-raised in the main thread by close()
                self.error = err

    def put(self, jobs: list[tuple[str, ItemResult | Skip, float]]) -> None:
        """Queue finished items ``(item, result, seconds)`` (written together)."""
        if self.error is not None:
            raise self.error
        self.queue.put(jobs)

    def close(self) -> None:
        self.queue.put(None)
        self.thread.join()
        if self.error is not None:
            raise self.error


def _todo(done: set[str], items: Sequence[str], shard: Shard) -> tuple[list[str], int]:
    """This process's items: every ``world``-th of the items no part of the run folder holds, and the bar's total.

    The items left are shared out, not all items: a resume with another number of processes neither loses nor
    repeats an item.
    """
    left = [it for it in items if it not in done]
    mine = left[shard.rank::shard.world]
    return mine, (len(items) if shard.world == 1 else len(mine))


def run_items(
    store: ResultStore, items: Sequence[str], compute: Callable[[str], ItemResult | Skip],
    shard: Shard | None = None, desc: str = "items",
) -> int:
    """Compute and store every item of this shard that the store does not hold yet.

    Args:
        store: The result store.
        items: All item ids, in a deterministic order (the same in every rank).
        compute: ``item ->`` its :class:`~attrdist.bench.records.ItemResult` or a
            :class:`~attrdist.bench.records.Skip`.
        shard: This process's shard (default: from the environment).
        desc: Progress bar label.

    Returns:
        The number of items computed now.
    """
    return run_batches(store, items, lambda item: item, lambda batch: [compute(it) for it, _ in batch], shard, desc)


class _Prepared:
    """The items to prepare, as a map-style dataset for torch's ``DataLoader`` (worker processes)."""

    def __init__(self, items: list[str], prepare: Callable[[str], object]) -> None:
        self.items, self.prepare = items, prepare

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> tuple[str, object]:
        return self.items[i], self.prepare(self.items[i])


def _prepared(todo: list[str], prepare: Callable[[str], object], workers: int) -> Iterator[tuple[str, object]]:
    if workers < 1:
        return ((it, prepare(it)) for it in todo)
    from torch.utils.data import DataLoader, Dataset

    loader: DataLoader[tuple[str, object]] = DataLoader(
        cast("Dataset[tuple[str, object]]", _Prepared(todo, prepare)), batch_size=None, num_workers=workers,
        prefetch_factor=4, persistent_workers=False)
    return iter(loader)


def run_batches(
    store: ResultStore, items: Sequence[str], prepare: Callable[[str], object],
    compute: Callable[[list[tuple[str, object]]], list[ItemResult | Skip]],
    shard: Shard | None = None, desc: str = "items", batch_size: int = 1, workers: int = 0,
    batch_key: Callable[[object], object] | None = None, progress: Progress | None = None,
    done: set[str] | None = None,
) -> int:
    """Like :func:`run_items`, with the input preparation split off and batched computation.

    Args:
        store: The result store.
        items: All item ids, in a deterministic order (the same in every rank).
        prepare: ``item -> prepared input`` (decoding, composing: CPU work, run in ``workers`` processes).
        compute: ``[(item, prepared), ...] -> [result per item]`` (the model work, on a batch).
        shard: This process's shard (default: from the environment).
        desc: Progress bar label.
        batch_size: Items per ``compute`` call.
        workers: Processes that prepare items while the model works (0: prepare in this process).
        batch_key: Items go into one batch only while this key of their prepared input is equal (input size,
            class-set size); default: all may.
        progress: The progress bar (a benchmark moves it within a batch); default: a new one.
        done: The items the run folder held when the run started (:func:`~attrdist.bench.config.open_run` reads
            them before any process writes); default: what the store reads now (a single process).

    Returns:
        The number of items computed now.
    """
    shard = shard or current_shard()
    todo, total = _todo(store.done() if done is None else done, items, shard)
    bar = progress or Progress()
    bar.open(len(todo), total, f"{desc} [rank {shard.rank}/{shard.world}]" if shard.world > 1 else desc)
    writer = _Writer(store, shard.rank)
    batch: list[tuple[str, object]] = []

    def flush() -> None:
        if not batch:
            return
        start = time.perf_counter()
        outs = compute(batch)
        per_item = (time.perf_counter() - start) / len(batch)
        writer.put([(item, out, per_item) for (item, _), out in zip(batch, outs, strict=True)])
        bar.finish(len(batch))
        batch.clear()

    try:
        for item, prepared in _prepared(todo, prepare, workers):
            if isinstance(prepared, Skip):
                writer.put([(item, prepared, 0.0)])
                bar.finish(1)
                continue
            if batch and batch_key is not None and batch_key(prepared) != batch_key(batch[0][1]):
                flush()
            batch.append((item, prepared))
            if len(batch) >= batch_size:
                flush()
        flush()
    finally:
        try:
            writer.close()  # raises the writer's error (a full disk): the bar still closes, ending its line
        finally:
            bar.close()
    barrier(shard)
    return len(todo)
