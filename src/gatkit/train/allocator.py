"""How host memory is obtained for large tensors: huge pages, or freed memory kept for reuse.

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

:func:`use_huge_pages` keeps nothing: it puts gatkit's allocator (``ops/csrc/huge_pages.cpp``)
in front of torch's CPU allocator. Requests of at least ``min_bytes`` (32 MiB, glibc's
largest mmap threshold, by default) get their own mapping aligned to 2 MiB and marked
``MADV_HUGEPAGE`` before first touch, and are unmapped when freed; smaller requests go to
the allocator it replaced. The kernel then faults such a tensor 2 MiB at a time instead of
4 KiB, and the attention kernels' random row gathers from the node tables (the projections,
the upstream gradients) find their rows behind far fewer TLB entries. Peak memory is that of
glibc's default policy. It needs Linux with transparent huge pages set to ``madvise`` or
``always`` (``/sys/kernel/mm/transparent_hugepage/enabled``) and gatkit's C++ extension;
elsewhere it changes nothing and returns ``False``. ``gatkit train`` puts it in place unless
told ``--no-huge-pages``; it is the in-process form of glibc's own
``GLIBC_TUNABLES=glibc.malloc.hugetlb=1``, which can only be set when a process starts.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = [
    "HUGE_PAGE_MIN_BYTES",
    "freed_memory_is_kept",
    "huge_page_stats",
    "huge_pages",
    "huge_pages_in_use",
    "keep_freed_memory",
    "stop_huge_pages",
    "transparent_huge_page_mode",
    "use_huge_pages",
]

HUGE_PAGE_MIN_BYTES = 32 << 20
_THP_SETTING = Path("/sys/kernel/mm/transparent_hugepage/enabled")

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


def transparent_huge_page_mode() -> str | None:
    """The kernel's THP setting (``"always"``, ``"madvise"``, ``"never"``); ``None`` off Linux."""
    try:
        text = _THP_SETTING.read_text()
    except OSError:
        return None
    chosen = [word[1:-1] for word in text.split() if word.startswith("[") and word.endswith("]")]
    return chosen[0] if chosen else None


def _kernels():  # the C++ extension, or None (imported late: building it takes a while)
    from gatkit.ops.fused_cpu import cpp_kernels

    return cpp_kernels()


def use_huge_pages(min_bytes: int = HUGE_PAGE_MIN_BYTES) -> bool:
    """Put gatkit's huge-page allocator in front of torch's CPU allocator, process-wide.

    Every CPU tensor of at least ``min_bytes`` allocated from then on, by any library, gets
    a 2 MiB-aligned mapping advised ``MADV_HUGEPAGE`` and unmapped on free; smaller ones go
    to the previous allocator. Values are unchanged; only how pages are obtained changes.
    Returns ``True`` when it is in place (also when it already was, with any ``min_bytes``),
    ``False`` where it cannot help: not Linux, THP ``never``, no C++ extension, glibc's
    freed memory already kept (:func:`keep_freed_memory` serves large requests from its heap),
    or another library's CPU allocator standing where it would go.
    """
    if isinstance(min_bytes, bool) or not isinstance(min_bytes, int) or min_bytes < 0:
        raise ValueError(f"min_bytes must be a non-negative int, got {min_bytes!r}")
    if huge_pages_in_use():
        return True
    if freed_memory_is_kept() or transparent_huge_page_mode() not in ("always", "madvise"):
        return False
    kernels = _kernels()
    if kernels is None:
        return False
    return bool(kernels.huge_pages_install(min_bytes))


def stop_huge_pages() -> bool:
    """Put back the allocator :func:`use_huge_pages` replaced; ``False`` if it was not in place.

    Tensors already allocated stay valid (each block carries its own deleter).
    """
    if not huge_pages_in_use():
        return False
    return bool(_kernels().huge_pages_remove())


def huge_pages_in_use() -> bool:
    """Whether gatkit's huge-page allocator is in place in this process."""
    return bool(huge_page_stats()["in_use"])


def huge_page_stats() -> dict[str, int | bool]:
    """The allocator's counters: ``in_use``, ``min_bytes``, ``live_blocks``, ``live_bytes``
    (mapped now) and ``blocks_served`` (since the process started)."""
    from gatkit.ops.fused_cpu import cpp_kernels_if_built

    kernels = cpp_kernels_if_built()
    if kernels is None:
        return {
            "in_use": False,
            "min_bytes": 0,
            "live_blocks": 0,
            "live_bytes": 0,
            "blocks_served": 0,
        }
    in_use, min_bytes, blocks, live_bytes, served = kernels.huge_pages_stats()
    return {
        "in_use": bool(in_use),
        "min_bytes": int(min_bytes),
        "live_blocks": int(blocks),
        "live_bytes": int(live_bytes),
        "blocks_served": int(served),
    }


@contextmanager
def huge_pages(min_bytes: int = HUGE_PAGE_MIN_BYTES) -> Iterator[bool]:
    """:func:`use_huge_pages` for the ``with`` block (yields whether it took effect); the
    previous allocator is back afterwards unless the allocator was already in place before."""
    already = huge_pages_in_use()
    active = use_huge_pages(min_bytes)
    try:
        yield active
    finally:
        if active and not already:
            stop_huge_pages()
