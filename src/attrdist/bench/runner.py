"""The benchmark runner: sharded over processes (torchrun), resumable, with a progress bar.

Items are assigned to ranks round-robin by their position in the (deterministic) item list; each rank
skips the items its store already holds, so a killed run started again with the same command continues
where it stopped, and ``torchrun --nproc_per_node N`` gives the same rows as one process.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from .store import ResultStore

__all__ = ["ItemResult", "Skip", "Shard", "current_shard", "run_items"]


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
    import torch.distributed as dist

    if not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() and os.environ.get("ATTRDIST_NCCL") else "gloo")
    dist.barrier()


def run_items(
    store: ResultStore, items: Sequence[str], compute: Callable[[str], list[tuple] | ItemResult | Skip],
    shard: Shard | None = None,
    desc: str = "items",
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
    from tqdm import tqdm

    shard = shard or current_shard()
    done = store.done()
    mine = [it for i, it in enumerate(items) if i % shard.world == shard.rank]
    todo = [it for it in mine if it not in done]
    bar = tqdm(todo, desc=f"{desc} [rank {shard.rank}/{shard.world}]" if shard.world > 1 else desc, unit="item",
               file=sys.stderr, initial=len(mine) - len(todo), total=len(mine), dynamic_ncols=True)
    for item in bar:
        start = time.perf_counter()
        out = compute(item)
        if isinstance(out, Skip):
            store.skip_item(item, out.reason)
        elif isinstance(out, ItemResult):
            store.write_item(item, out.rows, time.perf_counter() - start, shard.rank, out.curves)
        else:
            store.write_item(item, out, time.perf_counter() - start, shard.rank)
    bar.close()
    _barrier(shard)
    return len(todo)
