r"""Graph primitives on edge lists: gather by edge, segment max / sum / softmax.

A graph is an edge list ``edge_index`` of shape ``[2, E]``: row 0 holds the source node
:math:`j`, row 1 the destination node :math:`i` of each edge :math:`j \to i`. A *segment* is
the set of edges that share a destination, i.e. the in-neighbourhood :math:`\mathcal{N}(i)`.

These are pure functions on tensors, the only place where the layers touch the edge list.
Performance work replaces them here, in one place. Memory is :math:`O(E)` per call; nothing
here ever builds an :math:`N \times N` tensor.
"""

from __future__ import annotations

from torch import Tensor

__all__ = ["gather", "segment_max", "segment_sum", "segment_softmax"]


def gather(values: Tensor, index: Tensor) -> Tensor:
    r"""Per-edge copy of node values: ``out[e] = values[index[e]]``.

    Args:
        values: ``[N, *]`` node values.
        index: ``[E]`` node id of each edge (source row for :math:`h_j`, destination row for
            :math:`h_i`).

    Returns:
        ``[E, *]``.
    """
    return values.index_select(0, index)


def segment_sum(values: Tensor, index: Tensor, num_segments: int) -> Tensor:
    r""":math:`\text{out}_i = \sum_{e : \text{index}_e = i} \text{values}_e`.

    Args:
        values: ``[E, *]`` per-edge values.
        index: ``[E]`` segment (destination node) of each edge.
        num_segments: number of destination nodes :math:`N`; empty segments give zeros.

    Returns:
        ``[N, *]``.
    """
    out = values.new_zeros((num_segments, *values.shape[1:]))
    return out.index_add(0, index, values)


def segment_max(values: Tensor, index: Tensor, num_segments: int) -> Tensor:
    r""":math:`\text{out}_i = \max_{e : \text{index}_e = i} \text{values}_e` (0 for empty segments).

    Args:
        values: ``[E, *]`` per-edge values.
        index: ``[E]`` segment of each edge.
        num_segments: number of segments :math:`N`.

    Returns:
        ``[N, *]``.
    """
    out = values.new_zeros((num_segments, *values.shape[1:]))
    expanded = index.view(-1, *([1] * (values.dim() - 1))).expand_as(values)
    return out.scatter_reduce(0, expanded, values, reduce="amax", include_self=False)


def segment_softmax(scores: Tensor, index: Tensor, num_segments: int) -> Tensor:
    r"""Softmax of edge scores over each destination's incoming edges.

    .. math::
        \alpha_{ij} = \frac{\exp(e_{ij} - m_i)}{\sum_{k \in \mathcal{N}(i)} \exp(e_{ik} - m_i)},
        \qquad m_i = \max_{k \in \mathcal{N}(i)} e_{ik}

    Subtracting the per-destination maximum :math:`m_i` keeps every exponent :math:`\le 0`,
    so the result is finite for any finite scores, and the denominator is at least 1 (the
    maximum term contributes :math:`e^0`). :math:`m_i` is a constant shift, to which softmax
    is invariant, so it is detached from the graph: gradients stay exact.

    Args:
        scores: ``[E, H]`` raw scores :math:`e_{ij}` per edge and head.
        index: ``[E]`` destination :math:`i` of each edge.
        num_segments: number of destination nodes.

    Returns:
        ``[E, H]`` attention coefficients; they sum to one over each node's incoming edges.
    """
    if scores.numel() == 0:
        return scores
    shift = segment_max(scores.detach(), index, num_segments)  # [N, H]
    unnormalised = (scores - gather(shift, index)).exp()  # [E, H]
    normaliser = segment_sum(unnormalised, index, num_segments)  # [N, H]
    return unnormalised / gather(normaliser, index)
