r"""Self-loop handling on edge lists: remove existing loops, add one loop :math:`i \to i` per node.

GAT adds self-loops so that every node attends to itself (Veličković et al., 2018, §2.1:
"we only compute e_ij for nodes j ∈ N_i, where N_i is some neighborhood of node i in the
graph (including i)").
"""

from __future__ import annotations

import torch
from torch import Tensor

from gatkit.ops.segment import segment_max, segment_sum

__all__ = ["FILL_REDUCTIONS", "add_self_loops", "remove_self_loops", "self_loop_attr"]

#: The string values of ``fill_value``: how a node's incoming edge features are reduced to
#: the feature of its added self-loop.
FILL_REDUCTIONS = ("mean", "add", "sum", "max", "min", "mul")


def remove_self_loops(edge_index: Tensor, edge_attr: Tensor | None = None):
    """Drop every edge ``i -> i``; returns ``(edge_index, edge_attr)`` of the kept edges."""
    keep = edge_index[0] != edge_index[1]
    edge_index = edge_index[:, keep]
    if edge_attr is not None:
        edge_attr = edge_attr[keep]
    return edge_index, edge_attr


def self_loop_attr(
    edge_index: Tensor,
    edge_attr: Tensor,
    num_loops: int,
    num_dst: int,
    fill_value: float | Tensor | str,
) -> Tensor:
    r"""Edge features ``[num_loops, D]`` for the loops ``i -> i``, ``i < num_loops``.

    ``fill_value`` is a number (every entry), a tensor of shape ``[D]`` (every loop), or a
    reduction in :data:`FILL_REDUCTIONS` of the features of the edges entering node ``i``
    (nodes without incoming edges get 0, or 1 for ``"mul"``).
    """
    shape = (num_loops, edge_attr.size(1))
    if isinstance(fill_value, bool):
        raise TypeError(f"fill_value must be a number, tensor or string, got {fill_value!r}")
    if isinstance(fill_value, (int, float)):
        return edge_attr.new_full(shape, float(fill_value))
    if isinstance(fill_value, Tensor):
        return fill_value.to(edge_attr.device, edge_attr.dtype).reshape(1, -1).expand(shape).clone()
    dst = edge_index[1]
    if fill_value in ("add", "sum"):
        per_node = segment_sum(edge_attr, dst, num_dst)
    elif fill_value == "mean":
        total = segment_sum(edge_attr, dst, num_dst)
        count = segment_sum(edge_attr.new_ones(dst.numel()), dst, num_dst).clamp(min=1)
        per_node = total / count.unsqueeze(-1)
    elif fill_value == "max":
        per_node = segment_max(edge_attr, dst, num_dst)
    elif fill_value == "min":
        per_node = -segment_max(-edge_attr, dst, num_dst)
    elif fill_value == "mul":
        expanded = dst.view(-1, 1).expand_as(edge_attr)
        per_node = edge_attr.new_ones((num_dst, edge_attr.size(1))).scatter_reduce(
            0, expanded, edge_attr, reduce="prod", include_self=True
        )
    else:
        raise ValueError(
            f"fill_value must be a number, a tensor or one of {FILL_REDUCTIONS}, got {fill_value!r}"
        )
    return per_node[:num_loops]


def add_self_loops(
    edge_index: Tensor,
    num_loops: int,
    edge_attr: Tensor | None = None,
    num_dst: int | None = None,
    fill_value: float | Tensor | str = "mean",
):
    r"""Append the loops ``i -> i`` for ``i < num_loops`` after the existing edges.

    For a bipartite graph ``num_loops`` is ``min(num_src, num_dst)``: node ``i`` of the source
    set is taken to be node ``i`` of the destination set (the convention of PyG and DGL for
    sampled blocks, whose first destination nodes are the first source nodes).

    Returns ``(edge_index, edge_attr)``; the loops' features follow ``fill_value``
    (see :func:`self_loop_attr`).
    """
    loops = torch.arange(num_loops, device=edge_index.device, dtype=edge_index.dtype)
    new_index = torch.cat([edge_index, loops.unsqueeze(0).expand(2, -1)], dim=1)
    if edge_attr is None:
        return new_index, None
    if num_dst is None:
        num_dst = num_loops
    num_dst = max(num_dst, num_loops)
    loop_attr = self_loop_attr(edge_index, edge_attr, num_loops, num_dst, fill_value)
    return new_index, torch.cat([edge_attr, loop_attr], dim=0)
