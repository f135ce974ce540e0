r"""Destination-sorted CSR (and source-sorted CSC) views of an edge list, cached per graph.

The fused attention kernels walk each destination's in-edges :math:`\mathcal{N}(i)` as one
contiguous segment (CSR over destinations) and, in the backward pass, each source's
out-edges (CSC over sources) so that every gradient row is summed by one thread. Both views
keep the permutation back to the user's edge ids, so per-edge inputs (edge scores, edge
features) stay in the user's order; the CSC also records each edge's CSR position, so
per-edge tensors the kernels keep in CSR order (the dropout mask, ``dlogit``) are found from
either view.

Sorting costs :math:`O(E \log E)`; :func:`csr_of` caches the result per ``edge_index``
tensor (by identity and version counter), so a model that calls several layers on the same
graph sorts it once.
"""

from __future__ import annotations

import weakref
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

__all__ = ["EdgeCSR", "build_csr", "cached_by_edge_index", "csr_of", "edge_list"]


@dataclass(frozen=True)
class EdgeCSR:
    """Both sorted views of one edge list ``j -> i`` with ``E`` edges.

    Attributes:
        rowptr: ``[N_dst + 1]`` in-edges of ``i`` are sorted positions
            ``rowptr[i] : rowptr[i + 1]``.
        col: ``[E]`` source ``j`` of each destination-sorted edge.
        perm: ``[E]`` user edge id of each destination-sorted edge.
        colptr: ``[N_src + 1]`` out-edges of ``j`` are positions ``colptr[j] : colptr[j + 1]``.
        row: ``[E]`` destination ``i`` of each source-sorted edge.
        cperm: ``[E]`` user edge id of each source-sorted edge.
        cpos: ``[E]`` CSR position of each source-sorted edge.
    """

    rowptr: Tensor
    col: Tensor
    perm: Tensor
    colptr: Tensor
    row: Tensor
    cperm: Tensor
    cpos: Tensor

    @property
    def num_edges(self) -> int:
        return int(self.col.numel())

    @property
    def num_dst(self) -> int:
        return int(self.rowptr.numel()) - 1

    @property
    def num_src(self) -> int:
        return int(self.colptr.numel()) - 1

    def to(self, device: torch.device) -> EdgeCSR:
        """The same views on ``device``."""
        return EdgeCSR(*(t.to(device) for t in self.astuple()))

    def astuple(self) -> tuple[Tensor, ...]:
        return (self.rowptr, self.col, self.perm, self.colptr, self.row, self.cperm, self.cpos)


def _sorted_view(key: Tensor, other: Tensor, num_segments: int) -> tuple[Tensor, Tensor, Tensor]:
    """``(ptr [num_segments + 1], other sorted by key [E], perm [E])``; stable in edge id."""
    key_sorted, perm = torch.sort(key, stable=True)
    counts = torch.bincount(key_sorted, minlength=num_segments)  # [num_segments]
    ptr = torch.zeros(num_segments + 1, dtype=torch.long, device=key.device)
    torch.cumsum(counts, 0, out=ptr[1:])
    return ptr, other.index_select(0, perm), perm


def build_csr(edge_index: Tensor, num_src: int, num_dst: int) -> EdgeCSR:
    """Sort ``edge_index`` ``[2, E]`` (checked, int64) into :class:`EdgeCSR` views."""
    src, dst = edge_index[0].contiguous(), edge_index[1].contiguous()
    rowptr, col, perm = _sorted_view(dst, src, num_dst)
    colptr, row, cperm = _sorted_view(src, dst, num_src)
    position = torch.empty_like(perm)
    position[perm] = torch.arange(perm.numel(), device=perm.device)  # user id -> CSR position
    return EdgeCSR(rowptr, col, perm, colptr, row, cperm, position.index_select(0, cperm))


def edge_list(csr: EdgeCSR) -> Tensor:
    """The ``[2, E]`` edge list ``(j, i)`` the views were sorted from, in its own edge order.

    Inverse of :func:`build_csr`: the layers cache only the sorted views of a graph and form
    its edge list again when a caller asks for the attention weights with their edges.
    """
    num_dst = csr.num_dst
    targets = torch.repeat_interleave(
        torch.arange(num_dst, device=csr.col.device), csr.rowptr.diff()
    )  # [E], destination of each CSR position
    edges = torch.empty((2, csr.num_edges), dtype=csr.col.dtype, device=csr.col.device)
    edges[0, csr.perm] = csr.col
    edges[1, csr.perm] = targets
    return edges


_CACHE_SIZE = 16
_cache: OrderedDict[tuple, tuple[weakref.ref, Any]] = OrderedDict()


def cached_by_edge_index(edge_index: Tensor, key: tuple, make: Callable[[], Any]) -> Any:
    """Return ``make()``, cached while ``edge_index`` is alive and unmodified.

    The cache key is the tensor's identity, version counter (bumped by in-place writes),
    shape, device, and the caller's ``key``. At most 16 entries are kept.
    """
    full_key = (
        id(edge_index),
        edge_index._version,
        tuple(edge_index.shape),
        edge_index.data_ptr(),
        str(edge_index.device),
        *key,
    )
    hit = _cache.get(full_key)
    if hit is not None and hit[0]() is edge_index:
        _cache.move_to_end(full_key)
        return hit[1]
    value = make()
    _cache[full_key] = (weakref.ref(edge_index), value)
    while len(_cache) > _CACHE_SIZE:
        _cache.popitem(last=False)
    return value


def csr_of(edge_index: Tensor, num_src: int, num_dst: int) -> EdgeCSR:
    """:func:`build_csr`, cached per ``edge_index`` tensor (see :func:`cached_by_edge_index`)."""
    return cached_by_edge_index(
        edge_index, ("csr", num_src, num_dst), lambda: build_csr(edge_index, num_src, num_dst)
    )
