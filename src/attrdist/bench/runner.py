"""The benchmark runner: sharded over processes (torchrun), resumable, with a progress bar, keeping the device busy.

Items are assigned to ranks round-robin by their position in the (deterministic) item list; each rank
skips the items its store already holds, so a killed run started again with the same command continues
where it stopped, and ``torchrun --nproc_per_node N`` gives the same rows as one process.

While the model works on one batch, worker processes (``workers``) decode and compose the next items, and a
background thread writes finished items to the store, each in its own transaction: a kill loses at most the
items not yet written, which the next run computes again (none is stored twice).
"""

from __future__ import annotations

import os
import queue
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

from .store import ResultStore

__all__ = ["ItemResult", "Shard", "Skip", "current_shard", "run_batches", "run_items"]


@dataclass(frozen=True)
class Skip:
    """Returned by an item's computation to skip it, with the reason (stored, never silently dropped)."""

    reason: str


@dataclass(frozen=True)
class ItemResult:
    """Rows of one item, and optionally curves (``(unit, method, variant, name, values)``)."""

    rows: list[tuple]
    curves: list[tuple]


@dataclass(frozen=True)
class Shard:
    """This process's part of the work."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    def device(self, requested: str) -> str:
        """The device of this rank: ``cuda:<local_rank>`` when CUDA is requested, else ``requested``."""
        return f"cuda:{self.local_rank}" if requested == "cuda" else requested


def current_shard() -> Shard:
    """The shard from torchrun's environment (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``); one process otherwise."""
    return Shard(int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)),
                 int(os.environ.get("LOCAL_RANK", 0)))


def _barrier(shard: Shard) -> None:
    if shard.world < 2:
        return
    import torch
    import torch.distributed as dist

    if not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() and os.environ.get("ATTRDIST_NCCL") else "gloo")
    dist.barrier()


class _Writer:
    """Writes finished items to the store from a background thread, in the order they finish."""

    def __init__(self, store: ResultStore, rank: int) -> None:
        self.store, self.rank = store, rank
        self.queue: queue.Queue = queue.Queue(maxsize=256)
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="attrdist-writer", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while (job := self.queue.get()) is not None:
            item, out, seconds = job
            if self.error is not None:
                continue
            try:
                if isinstance(out, Skip):
                    self.store.skip_item(item, out.reason)
                elif isinstance(out, ItemResult):
                    self.store.write_item(item, out.rows, seconds, self.rank, out.curves)
                else:
                    self.store.write_item(item, out, seconds, self.rank)
            except BaseException as err:  # noqa: BLE001 - re-raised in the main thread by close()
                self.error = err

    def put(self, item: str, out: object, seconds: float) -> None:
        if self.error is not None:
            raise self.error
        self.queue.put((item, out, seconds))

    def close(self) -> None:
        self.queue.put(None)
        self.thread.join()
        if self.error is not None:
            raise self.error


def _todo(store: ResultStore, items: Sequence[str], shard: Shard) -> tuple[list[str], int]:
    done = store.done()
    mine = [it for i, it in enumerate(items) if i % shard.world == shard.rank]
    return [it for it in mine if it not in done], len(mine)


def _bar(todo: list[str], total: int, desc: str, shard: Shard):  # noqa: ANN202
    from tqdm import tqdm

    return tqdm(total=total, initial=total - len(todo), unit="item", file=sys.stderr, dynamic_ncols=True,
                desc=f"{desc} [rank {shard.rank}/{shard.world}]" if shard.world > 1 else desc)


def run_items(
    store: ResultStore, items: Sequence[str], compute: Callable[[str], list[tuple] | ItemResult | Skip],
    shard: Shard | None = None, desc: str = "items",
) -> int:
    """Compute and store every item of this shard that the store does not hold yet.

    Args:
        store: The result store.
        items: All item ids, in a deterministic order (the same in every rank).
        compute: ``item -> rows`` (``(unit, method, variant, metric, value)``), an :class:`ItemResult`
            or a :class:`Skip`.
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
    from torch.utils.data import DataLoader

    loader = DataLoader(_Prepared(todo, prepare), batch_size=None, num_workers=workers, prefetch_factor=4,
                        persistent_workers=False)
    return iter(loader)


def run_batches(
    store: ResultStore, items: Sequence[str], prepare: Callable[[str], object],
    compute: Callable[[list[tuple[str, object]]], list[list[tuple] | ItemResult | Skip]],
    shard: Shard | None = None, desc: str = "items", batch_size: int = 1, workers: int = 0,
    batch_key: Callable[[object], object] | None = None,
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

    Returns:
        The number of items computed now.
    """
    shard = shard or current_shard()
    todo, total = _todo(store, items, shard)
    bar = _bar(todo, total, desc, shard)
    writer = _Writer(store, shard.rank)
    batch: list[tuple[str, object]] = []

    def flush() -> None:
        if not batch:
            return
        start = time.perf_counter()
        outs = compute(batch)
        per_item = (time.perf_counter() - start) / len(batch)
        for (item, _), out in zip(batch, outs, strict=True):
            writer.put(item, out, per_item)
        bar.update(len(batch))
        batch.clear()

    try:
        for item, prepared in _prepared(todo, prepare, workers):
            if isinstance(prepared, Skip):
                writer.put(item, prepared, 0.0)
                bar.update(1)
                continue
            if batch and batch_key is not None and batch_key(prepared) != batch_key(batch[0][1]):
                flush()
            batch.append((item, prepared))
            if len(batch) >= batch_size:
                flush()
        flush()
    finally:
        writer.close()
        bar.close()
    _barrier(shard)
    return len(todo)
