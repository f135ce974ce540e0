"""Keep freed host memory for reuse, so a repeated training step stops page-faulting.

PyTorch's CPU tensors come from ``malloc``. glibc serves a request above its mmap threshold
(at most 32 MiB on 64-bit Linux, however often such blocks are freed) with a fresh
``mmap`` and returns it with ``munmap`` when the tensor is freed, so the next step's tensor
of the same size is page-faulted and zeroed by the kernel again, one 4 KiB page at a time.
On this repository's 2-core machine a GAT training step on a 300 k-node, 3 M-edge graph
faulted 3.8 GB per step, 1.4 s of system time next to 4.3 s of computation; on a 100 k-node
graph, whose tensors stay under 32 MiB, none.

:func:`keep_freed_memory` tells glibc (``mallopt``) to serve every request from its heap
(``M_MMAP_MAX = 0``) and never to give the heap's free top back (``M_TRIM_THRESHOLD = -1``):
freed blocks are reused by the next step, and the process keeps its peak size until it
ends, as a GPU caching allocator does. It changes how memory is obtained, not what is
computed. It is process-wide and opt-in (``gatkit train --keep-freed-memory``;
``benchmarks/run.py --allocator keep`` for both libraries). On the arxiv-sized graph it took
gatkit's GAT training step from 1.55 to 0.94 s and PyG's from 3.9 to 1.7 s: much of PyG's
time on this machine was page faults.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

__all__ = ["freed_memory_is_kept", "keep_freed_memory"]

M_TRIM_THRESHOLD = -1  # glibc's mallopt parameter numbers (malloc.h)
M_MMAP_MAX = -4
_state = {"kept": False}


def keep_freed_memory() -> bool:
    """Make glibc's ``malloc`` keep freed memory for reuse; ``True`` where it took effect.

    A no-op returning ``False`` where the C library is not glibc (macOS, Windows, musl).
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
        libc.gnu_get_libc_version  # noqa: B018 (glibc only: musl has mallopt as a stub)
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    kept = mallopt(M_MMAP_MAX, 0) == 1 and mallopt(M_TRIM_THRESHOLD, -1) == 1
    _state["kept"] = _state["kept"] or kept
    return kept


def freed_memory_is_kept() -> bool:
    """Whether :func:`keep_freed_memory` took effect in this process."""
    return _state["kept"]
