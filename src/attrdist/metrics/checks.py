"""Checks that a map can be scored at all: a map VAR zeroed (or any constant map) carries no ranking."""

from __future__ import annotations

import numpy as np
from torch import Tensor

from .base import register_metric

__all__ = ["degenerate"]

register_metric("zeroed", task="count", higher_is_better=False,
                summary="maps that cannot be scored (all zero after VAR, or constant), counted, never averaged")(None)
register_metric("no_positive", task="count", higher_is_better=False,
                summary="maps without positive mass (nothing for region attribution to share), counted")(None)


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
    a = m.detach().cpu().double().numpy() if isinstance(m, Tensor) else np.asarray(m, dtype=np.float64)
    if not np.isfinite(a).all():
        return "non-finite map"
    if not a.any():
        return "all-zero map"
    if a.max() == a.min():
        return "constant map"
    return None
