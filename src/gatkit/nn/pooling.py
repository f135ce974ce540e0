r"""Graph readouts: node embeddings of a batch of graphs → one vector per graph.

A batch of ``G`` graphs is one disjoint union with ``N`` nodes; ``batch [N]`` gives each
node's graph id. Every readout here is a segment reduction with ``batch`` as the segment
index (the role the destination index plays in a layer), so it costs :math:`O(N)` and never
pads graphs to a common size.

- :func:`global_sum_pool`: :math:`\mathbf{g}_b = \sum_{i \in V_b} \mathbf{h}_i`
- :func:`global_mean_pool`: :math:`\mathbf{g}_b = \frac{1}{|V_b|}\sum_{i \in V_b} \mathbf{h}_i`
- :func:`global_max_pool`: :math:`\mathbf{g}_b = \max_{i \in V_b} \mathbf{h}_i` (per channel)
- :class:`GlobalAttentionPool`: :math:`\mathbf{g}_b = \sum_{i \in V_b} \beta_i\,
  f(\mathbf{h}_i)` with :math:`\beta` a softmax over the nodes of each graph (Li et al.,
  *Gated Graph Sequence Neural Networks*, ICLR 2016, §3.3).

Graphs without nodes (ids below ``num_graphs`` that no node carries) get zeros.
"""

from __future__ import annotations

from typing import Literal, overload

import torch
from torch import Tensor, nn

from gatkit import ops
from gatkit.errors import GraphInputError

__all__ = ["GlobalAttentionPool", "global_max_pool", "global_mean_pool", "global_sum_pool"]


def _check_batch(x: Tensor, batch: object, num_graphs: int | None) -> tuple[Tensor, int]:
    """Return ``(batch, num_graphs)`` after checking ``batch`` is ``[N]`` int ids in range."""
    if not isinstance(x, Tensor) or x.dim() != 2:
        shape = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
        raise GraphInputError(f"x must be a [num_nodes, channels] tensor, got {shape}")
    if not isinstance(batch, Tensor):
        raise GraphInputError(
            f"batch must be a torch.Tensor of graph ids [num_nodes], got {type(batch).__name__}"
        )
    if batch.is_floating_point() or batch.is_complex() or batch.dtype == torch.bool:
        raise GraphInputError(f"batch must have an integer dtype (torch.long), got {batch.dtype}")
    if batch.dim() != 1 or batch.size(0) != x.size(0):
        raise GraphInputError(
            f"batch must have shape [num_nodes] = ({x.size(0)},) (one graph id per row of x), "
            f"got {tuple(batch.shape)}"
        )
    batch = batch.long()
    if num_graphs is None:
        num_graphs = int(batch.max()) + 1 if batch.numel() > 0 else 0
    elif isinstance(num_graphs, bool) or not isinstance(num_graphs, int) or num_graphs < 0:
        raise GraphInputError(f"num_graphs must be a non-negative int, got {num_graphs!r}")
    if batch.numel() > 0:
        lo, hi = int(batch.min()), int(batch.max())
        if lo < 0 or hi >= num_graphs:
            raise GraphInputError(
                f"batch holds graph ids in [{lo}, {hi}] but num_graphs={num_graphs}; "
                f"expected ids in [0, {num_graphs})"
            )
    return batch, num_graphs


def global_sum_pool(x: Tensor, batch: Tensor, num_graphs: int | None = None) -> Tensor:
    r""":math:`\mathbf{g}_b = \sum_{i : \text{batch}_i = b} \mathbf{x}_i`.

    Args:
        x: ``[N, F]`` node embeddings.
        batch: ``[N]`` graph id of every node.
        num_graphs: ``G``; default ``max(batch) + 1``.

    Returns:
        ``[G, F]``.
    """
    batch, num_graphs = _check_batch(x, batch, num_graphs)
    return ops.segment_sum(x, batch, num_graphs)


def global_mean_pool(x: Tensor, batch: Tensor, num_graphs: int | None = None) -> Tensor:
    r""":math:`\mathbf{g}_b = \frac{1}{|V_b|} \sum_{i : \text{batch}_i = b} \mathbf{x}_i`.

    Args:
        x: ``[N, F]`` node embeddings.
        batch: ``[N]`` graph id of every node.
        num_graphs: ``G``; default ``max(batch) + 1``.

    Returns:
        ``[G, F]`` (zeros for a graph without nodes).
    """
    batch, num_graphs = _check_batch(x, batch, num_graphs)
    total = ops.segment_sum(x, batch, num_graphs)  # [G, F]
    count = ops.segment_sum(x.new_ones(x.size(0)), batch, num_graphs)  # [G]
    return total / count.clamp(min=1).unsqueeze(-1)


def global_max_pool(x: Tensor, batch: Tensor, num_graphs: int | None = None) -> Tensor:
    r""":math:`\mathbf{g}_{b,c} = \max_{i : \text{batch}_i = b} x_{i,c}` for every channel ``c``.

    Args:
        x: ``[N, F]`` node embeddings.
        batch: ``[N]`` graph id of every node.
        num_graphs: ``G``; default ``max(batch) + 1``.

    Returns:
        ``[G, F]`` (zeros for a graph without nodes).
    """
    batch, num_graphs = _check_batch(x, batch, num_graphs)
    return ops.segment_max(x, batch, num_graphs)


class GlobalAttentionPool(nn.Module):
    r"""Global soft-attention readout (Li et al., ICLR 2016, eq. 7; PyG ``AttentionalAggregation``).

    .. math::
        s_i = \text{gate}(\mathbf{h}_i) \in \mathbb{R}, \qquad
        \beta_i = \frac{\exp(s_i)}{\sum_{k \in V_{b(i)}} \exp(s_k)}, \qquad
        \mathbf{g}_b = \sum_{i \in V_b} \beta_i \, f(\mathbf{h}_i)

    :math:`V_b` is the node set of graph :math:`b`, so the weights :math:`\beta` sum to one
    over each graph's nodes, and :math:`\mathbf{g}_b` does not depend on the order of the
    nodes within a graph. :math:`f` is ``feature_nn``, the identity when it is ``None``. The
    softmax is :func:`gatkit.ops.segment_softmax` with ``batch`` as the segment index
    (max-shifted, so finite for any finite gate scores).

    Args:
        gate_nn: maps ``[N, F]`` to ``[N, 1]`` (or ``[N]``) scores :math:`s_i`.
        feature_nn: maps ``[N, F]`` to ``[N, F']``; ``None`` for :math:`f = \mathrm{id}`.

    Shapes:
        - input: ``x`` ``[N, F]``, ``batch`` ``[N]`` graph ids in ``[0, G)``.
        - output: ``[G, F']``; with ``return_weights=True`` also ``beta`` ``[N]``.
    """

    def __init__(self, gate_nn: nn.Module, feature_nn: nn.Module | None = None) -> None:
        super().__init__()
        if not isinstance(gate_nn, nn.Module):
            raise TypeError(f"gate_nn must be a torch.nn.Module, got {type(gate_nn).__name__}")
        if feature_nn is not None and not isinstance(feature_nn, nn.Module):
            raise TypeError(
                f"feature_nn must be a torch.nn.Module or None, got {type(feature_nn).__name__}"
            )
        self.gate_nn = gate_nn
        self.feature_nn = feature_nn

    def reset_parameters(self) -> None:
        """Reset every sub-module that has ``reset_parameters``."""
        for module in self.modules():
            if module is not self and hasattr(module, "reset_parameters"):
                module.reset_parameters()

    @overload
    def forward(
        self,
        x: Tensor,
        batch: Tensor,
        num_graphs: int | None = ...,
        return_weights: Literal[False] = ...,
    ) -> Tensor: ...

    @overload
    def forward(
        self,
        x: Tensor,
        batch: Tensor,
        num_graphs: int | None = ...,
        return_weights: Literal[True] = ...,
    ) -> tuple[Tensor, Tensor]: ...

    def forward(
        self,
        x: Tensor,
        batch: Tensor,
        num_graphs: int | None = None,
        return_weights: bool = False,
    ) -> Tensor | tuple[Tensor, Tensor]:
        """Pool ``x`` per graph; see the class docstring for the equations and shapes."""
        batch, num_graphs = _check_batch(x, batch, num_graphs)

        # s_i = gate(h_i).
        scores = self.gate_nn(x)  # [N, 1] or [N]
        if scores.dim() == 1:
            scores = scores.unsqueeze(-1)
        if scores.dim() != 2 or scores.size(0) != x.size(0) or scores.size(1) != 1:
            raise GraphInputError(
                f"gate_nn must map x [N, F] to scores [N, 1], got {tuple(scores.shape)} "
                f"for N={x.size(0)}"
            )

        # β_i = softmax of s over the nodes of graph b(i).
        beta = ops.segment_softmax(scores, batch, num_graphs)  # [N, 1]

        # g_b = Σ_{i ∈ V_b} β_i f(h_i).
        values = x if self.feature_nn is None else self.feature_nn(x)  # [N, F']
        if values.dim() != 2 or values.size(0) != x.size(0):
            raise GraphInputError(
                f"feature_nn must map x [N, F] to [N, F'], got {tuple(values.shape)} "
                f"for N={x.size(0)}"
            )
        pooled = ops.segment_sum(beta * values, batch, num_graphs)  # [G, F']
        if return_weights:
            return pooled, beta.squeeze(-1)
        return pooled

    def __repr__(self) -> str:
        return f"{type(self).__name__}(gate_nn={self.gate_nn}, feature_nn={self.feature_nn})"
