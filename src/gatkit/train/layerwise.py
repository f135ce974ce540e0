r"""Exact full-graph inference, one layer at a time over batches of destination nodes.

Full-batch evaluation keeps every layer's activations of every node *and* every edge
(:math:`O(E \cdot H \cdot C)` for the attention messages) in memory at once. Layer-wise
inference computes the same logits with the memory of one batch:

.. math::
    \mathbf{H}^{(\ell)}[V_b] = \mathrm{step}_\ell\big(\mathbf{H}^{(\ell-1)}[V_b \cup
        \mathcal{N}(V_b)],\ E(V_b)\big) \quad \text{for each batch } V_b
        \text{ of destination nodes, then } \ell = 1, \dots, L,

where :math:`E(V_b)` holds **every** in-edge of the batch's nodes (no sampling) in the
block layout of :mod:`gatkit.data.sampling`. Each destination sees exactly its full-graph
neighbourhood, so the result equals the full-batch forward up to floating-point summation
order. Only :math:`\mathbf{H}^{(\ell-1)}` and :math:`\mathbf{H}^{(\ell)}` of all nodes
(``[N, width]``) are held between batches, on ``storage_device``.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from gatkit.data.graph import Graph
from gatkit.data.sampling import InNeighbourCSR, NeighborSampler
from gatkit.models.layer_steps import forward_layer, model_num_layers

__all__ = ["layerwise_inference"]


@torch.no_grad()
def layerwise_inference(
    model: nn.Module,
    graph: Graph,
    *,
    batch_size: int = 4096,
    csr: InNeighbourCSR | None = None,
    device: torch.device | str | None = None,
    storage_device: torch.device | str = "cpu",
) -> Tensor:
    """Logits ``[N, C]`` of ``model`` (evaluation mode) on every node of ``graph``.

    Args:
        model: a :class:`gatkit.models.GAT` or a model with ``forward_layer`` (see
            :mod:`gatkit.models.layer_steps`).
        graph: the graph (``x [N, F]``, ``edge_index [2, E]``).
        batch_size: destination nodes per batch.
        csr: the graph's :class:`InNeighbourCSR`, when already built.
        device: where each batch is computed (default: the model's device).
        storage_device: where the per-layer activations of all nodes are kept.

    The model is left in evaluation mode.
    """
    if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    num_layers = model_num_layers(model)
    if device is None:
        first = next(model.parameters(), None)
        device = first.device if first is not None else torch.device("cpu")
    num_nodes = graph.num_nodes
    sampler = NeighborSampler(
        graph.edge_index.to(storage_device), num_nodes, [-1] * num_layers, csr=csr
    )
    model.eval()
    h = graph.x.to(storage_device)  # [N, F] H^(0)
    for index in range(num_layers):
        outputs = []
        for begin in range(0, num_nodes, batch_size):
            dst = torch.arange(begin, min(begin + batch_size, num_nodes), device=h.device)
            block = sampler.sample_block(dst, -1).to(device)  # every in-edge of the batch
            x_src = h.index_select(0, block.src_nodes.to(h.device)).to(device)  # [N_src, width]
            out = forward_layer(model, index, x_src, block.num_dst, block.edge_index)
            outputs.append(out.to(storage_device))  # [N_dst, width']
        h = torch.cat(outputs)  # [N, width'] H^(l)
    return h
