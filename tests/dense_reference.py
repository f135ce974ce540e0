r"""Dense O(N²) reference implementations of GAT and GATv2, written from the papers' formulas.

Independent of :mod:`gatkit.ops`: the graph is a dense multiplicity matrix ``A[i, j]`` (the
number of edges ``j -> i``), scores are computed for every pair and masked, and

.. math::
    \alpha_{ij} = \frac{\exp(e_{ij})}{\sum_{k} A_{ik} \exp(e_{ik})}, \qquad
    h_i' = \sum_j A_{ij} \alpha_{ij} W h_j .

Edge features are a dense ``[N_t, N_s, D]`` tensor, so graphs with edge features must have
at most one edge per (j, i) pair. The layers' own parameters are read, never their code.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from gatkit.nn import GATConv, GATv2Conv


def edges_after_loop_handling(layer, edge_index: Tensor, num_src: int, num_dst: int) -> Tensor:
    """Self-loop rule of GAT: drop existing loops, add ``i -> i`` for ``i < min(N_s, N_t)``."""
    if not layer.add_self_loops:
        return edge_index
    kept = [(j, i) for j, i in edge_index.t().tolist() if j != i]
    kept += [(i, i) for i in range(min(num_src, num_dst))]
    return torch.tensor(kept, dtype=torch.long).t().reshape(2, -1)


def loop_feature(layer, node: int, incoming: list[Tensor], edge_dim: int, like: Tensor) -> Tensor:
    """Feature of the added loop ``node -> node`` from ``fill_value``, computed naively."""
    fill = layer.fill_value
    if isinstance(fill, (int, float)):
        return like.new_full((edge_dim,), float(fill))
    if isinstance(fill, Tensor):
        return fill.to(like)
    if not incoming:
        return like.new_ones(edge_dim) if fill == "mul" else like.new_zeros(edge_dim)
    stacked = torch.stack(incoming)
    reductions = {
        "mean": lambda t: t.mean(0),
        "add": lambda t: t.sum(0),
        "sum": lambda t: t.sum(0),
        "max": lambda t: t.max(0).values,
        "min": lambda t: t.min(0).values,
        "mul": lambda t: t.prod(0),
    }
    return reductions[fill](stacked)


def dense_graph(layer, case) -> tuple[Tensor, Tensor | None, Tensor]:
    """``(A [N_t, N_s], E_dense [N_t, N_s, D] or None, edge_index_used)``."""
    num_src, num_dst = case.x_src.size(0), case.x_dst.size(0)
    used = edges_after_loop_handling(layer, case.edge_index, num_src, num_dst)
    counts = case.x_src.new_zeros(num_dst, num_src)
    for j, i in used.t().tolist():
        counts[i, j] += 1
    if case.edge_attr is None:
        return counts, None, used
    edge_dim = case.edge_attr.size(1)
    dense = case.x_src.new_zeros(num_dst, num_src, edge_dim)
    incoming: dict[int, list[Tensor]] = {i: [] for i in range(num_dst)}
    for e, (j, i) in enumerate(case.edge_index.t().tolist()):
        if layer.add_self_loops and i == j:
            continue
        dense[i, j] = case.edge_attr[e]
        incoming[i].append(case.edge_attr[e])
    if layer.add_self_loops:
        for i in range(min(num_src, num_dst)):
            dense[i, i] = loop_feature(layer, i, incoming[i], edge_dim, case.edge_attr)
    return counts, dense, used


def masked_softmax(scores: Tensor, counts: Tensor) -> Tensor:
    """Per-edge coefficient ``exp(e_ij) / Σ_k A_ik exp(e_ik)`` for every pair, ``[N_t, N_s, H]``."""
    mask = (counts > 0).unsqueeze(-1)
    masked = scores.masked_fill(~mask, float("-inf"))
    row_max = masked.amax(dim=1, keepdim=True)
    row_max = torch.where(torch.isfinite(row_max), row_max, torch.zeros_like(row_max))
    weights = torch.exp(masked - row_max)  # 0 where there is no edge
    normaliser = (counts.unsqueeze(-1) * weights).sum(dim=1, keepdim=True)
    return torch.where(normaliser > 0, weights / normaliser, torch.zeros_like(weights))


def dense_forward(layer: GATConv | GATv2Conv, case) -> tuple[Tensor, Tensor, Tensor]:
    """Output ``[N_t, out]``, ``alpha [E', H]`` in the order of ``edge_index_used``, and it."""
    H, C = layer.heads, layer.out_channels
    counts, dense_edges, used = dense_graph(layer, case)
    x_src, x_dst = case.x_src, case.x_dst
    if isinstance(layer, GATConv):
        w_src = layer.project_source.weight
        w_dst = layer.project_target.weight if layer.project_target is not None else w_src
        wh_j = (x_src @ w_src.t()).view(-1, H, C)
        wh_i = (x_dst @ w_dst.t()).view(-1, H, C)
        # e_ij = LeakyReLU(a_t·W h_i + a_s·W h_j [+ a_e·W_e e_ij]) for every pair (i, j).
        scores = (wh_i * layer.att_target).sum(-1)[:, None, :] + (wh_j * layer.att_source).sum(-1)[
            None, :, :
        ]
        if dense_edges is not None and layer.project_edge is not None:
            we = (dense_edges @ layer.project_edge.weight.t()).view(*counts.shape, H, C)
            scores = scores + (we * layer.att_edge).sum(-1)
        scores = F.leaky_relu(scores, layer.negative_slope)
        messages = wh_j
    else:
        target = layer.project_target or layer.project_source
        ws_h = x_src @ layer.project_source.weight.t()
        wt_h = x_dst @ target.weight.t()
        if layer.project_source.bias is not None:
            ws_h = ws_h + layer.project_source.bias
            wt_h = wt_h + target.bias
        ws_h, wt_h = ws_h.view(-1, H, C), wt_h.view(-1, H, C)
        # e_ij = a·LeakyReLU(W_s h_j + W_t h_i [+ W_e e_ij]) for every pair (i, j).
        hidden = wt_h[:, None] + ws_h[None, :]  # [N_t, N_s, H, C]
        if dense_edges is not None and layer.project_edge is not None:
            hidden = hidden + (dense_edges @ layer.project_edge.weight.t()).view(
                *counts.shape, H, C
            )
        scores = (F.leaky_relu(hidden, layer.negative_slope) * layer.att).sum(-1)
        messages = ws_h
    alpha_pairs = masked_softmax(scores, counts)  # [N_t, N_s, H]
    out = torch.einsum("ij,ijh,jhc->ihc", counts, alpha_pairs, messages)
    out = out.reshape(out.size(0), -1) if layer.concat else out.mean(1)
    if layer.residual_projection is not None:
        out = out + x_dst @ layer.residual_projection.weight.t()
    if layer.bias is not None:
        out = out + layer.bias
    alpha = alpha_pairs[used[1], used[0]]  # [E', H]
    return out, alpha, used
