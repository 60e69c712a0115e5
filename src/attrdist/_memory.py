"""Large freed blocks kept for reuse in attrdist's own processes (glibc's ``malloc`` settings).

glibc serves a request over its mmap threshold (128 kB, raised as blocks are freed) with fresh pages from the
kernel and returns them when freed, and it gives the top of its heap back beyond a trim threshold. A CPU pipeline
that allocates tensors of a few MB each time (the VAR step, the metrics, a model's activations) then faults in
every page of every temporary again: on this project's 2-core CPU that was 35-45% of the VAR step
(``benchmarks/runner_overhead.py``). Raising both thresholds keeps those blocks in the heap.

The command line (``attrdist explain``, ``bench``, ``serve``) calls :func:`reuse_freed_memory` once; a program
that imports attrdist keeps its own settings. ``ATTRDIST_MALLOC=default`` (or any ``MALLOC_*`` variable of
one's own) leaves glibc's settings alone. Other C libraries (musl, macOS, Windows) are left alone.
"""

from __future__ import annotations

import ctypes
import os
import sys

__all__ = ["MMAP_THRESHOLD", "TRIM_THRESHOLD", "reuse_freed_memory"]

#: Blocks up to this size come from the heap (glibc's largest allowed mmap threshold on 64-bit systems).
MMAP_THRESHOLD = 32 << 20
#: Free memory at the top of the heap kept before any is given back.
TRIM_THRESHOLD = 512 << 20

_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameters (malloc.h)
_applied = False


def reuse_freed_memory() -> bool:
    """Set glibc's mmap and trim thresholds so that freed tensors' memory is reused (once per process).

    Returns:
        Whether the settings are in force (``False``: not glibc, or left alone on request).
    """
    global _applied
    if _applied:
        return True
    if not sys.platform.startswith("linux") or os.environ.get("ATTRDIST_MALLOC", "") == "default" or any(
            k.startswith("MALLOC_") for k in os.environ):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt  # the process's C library; musl has no mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    _applied = bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD))
    return _applied
