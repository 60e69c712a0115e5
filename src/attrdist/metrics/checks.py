"""Checks that a map can be scored at all: a map VAR zeroed (or any constant map) carries no ranking."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

__all__ = ["degenerate", "unscorable"]


def unscorable(maps: Tensor) -> Tensor:
    """Which of maps ``[N, ...]`` cannot be scored: non-finite anywhere, all zero, or constant.

    The one definition every benchmark uses (localisation, insertion, sanity): such a map orders no pixel before
    another, so a score would reflect tie-breaking, not the method. Benchmarks record it as ``zeroed`` and
    reports leave it out of every mean (:mod:`attrdist.bench.results`).

    Example:
        >>> unscorable(torch.stack([torch.zeros(2, 2), torch.ones(2, 2), torch.eye(2)])).tolist()
        [True, True, False]
    """
    flat = maps.detach().flatten(1)
    # the largest and smallest value of a map are NaN if it holds a NaN and infinite if it holds an inf: two
    # reductions answer both questions (torch.isfinite over the whole map costs 30 times as much)
    high, low = flat.amax(1), flat.amin(1)
    return ~(torch.isfinite(high) & torch.isfinite(low)) | (high == low)


def degenerate(m: Tensor | np.ndarray) -> str | None:
    """Why a map cannot be scored, or ``None`` if it can.

    An all-zero map (VAR keeps no pixel of it) or a constant one orders no pixel before another: its
    similarity, its insertion curve and its localisation would reflect tie-breaking, not the method. Such
    maps are recorded with this reason and left out of the aggregates.

    Args:
        m: A map (any shape).

    Returns:
        ``"all-zero map"``, ``"constant map"``, ``"non-finite map"`` or ``None``.

    Example:
        >>> import torch
        >>> degenerate(torch.zeros(4, 4)), degenerate(torch.ones(4, 4)), degenerate(torch.eye(4))
        ('all-zero map', 'constant map', None)
    """
    t = m.detach() if isinstance(m, torch.Tensor) else torch.from_numpy(np.asarray(m, dtype=np.float64))
    if not bool(unscorable(t.reshape(1, -1))):
        return None
    if not bool(torch.isfinite(t).all()):
        return "non-finite map"
    return "all-zero map" if not bool(t.any()) else "constant map"
