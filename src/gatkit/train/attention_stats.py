r"""Statistics of attention coefficients on edge lists: entropy per layer and head.

For a node :math:`i` with incoming edges :math:`\mathcal{N}(i)` and coefficients
:math:`\alpha_{ij}` of one head (they sum to one over :math:`j`), the attention entropy is

.. math::
    H_i = -\sum_{j \in \mathcal{N}(i)} \alpha_{ij} \log \alpha_{ij},
    \qquad 0 \le H_i \le \log |\mathcal{N}(i)|,

with the upper bound reached by uniform attention :math:`\alpha_{ij} = 1/|\mathcal{N}(i)|`.
A layer's entropy is the mean of :math:`H_i` over the nodes that have incoming edges; set
beside the mean uniform entropy :math:`\overline{\log |\mathcal{N}(i)|}` it says whether the
layer attends to anything (GAT papers use it to judge whether attention is more than a
uniform average; e.g. Kim & Oh, ICLR 2021).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from gatkit.errors import GraphInputError
from gatkit.nn import record_attention

__all__ = ["LayerEntropy", "attention_entropy", "layer_entropies", "uniform_entropy"]


def _check_attention(edge_index: Tensor, alpha: Tensor, num_nodes: int) -> Tensor:
    if edge_index.dim() != 2 or edge_index.size(0) != 2:
        raise GraphInputError(f"edge_index must have shape [2, E], got {tuple(edge_index.shape)}")
    if alpha.dim() == 1:
        alpha = alpha.unsqueeze(-1)
    if alpha.dim() != 2 or alpha.size(0) != edge_index.size(1):
        raise GraphInputError(
            f"alpha must have shape [E, heads] with E={edge_index.size(1)}, "
            f"got {tuple(alpha.shape)}"
        )
    if edge_index.numel() and int(edge_index[1].max()) >= num_nodes:
        raise GraphInputError(
            f"edge_index[1] holds node {int(edge_index[1].max())} but num_nodes={num_nodes}"
        )
    return alpha


def attention_entropy(edge_index: Tensor, alpha: Tensor, num_nodes: int) -> Tensor:
    r"""Mean over nodes with in-edges of :math:`H_i = -\sum_j \alpha_{ij}\log\alpha_{ij}`.

    Args:
        edge_index: ``[2, E]`` edges :math:`j \to i` (as returned with the coefficients).
        alpha: ``[E, heads]`` (or ``[E]``) coefficients, normalised over each target's edges.
        num_nodes: number of target nodes.

    Returns:
        ``[heads]`` mean entropy in nats (:math:`0 \log 0 = 0`).
    """
    alpha = _check_attention(edge_index, alpha, num_nodes)
    dst = edge_index[1]
    terms = -torch.special.xlogy(alpha, alpha)  # [E, H]; 0 where α = 0
    per_node = alpha.new_zeros(num_nodes, alpha.size(1)).index_add(0, dst, terms)  # [N, H]
    has_edges = torch.bincount(dst, minlength=num_nodes) > 0  # [N]
    if not bool(has_edges.any()):
        return alpha.new_full((alpha.size(1),), float("nan"))
    return per_node[has_edges].mean(dim=0)  # [H]


def uniform_entropy(edge_index: Tensor, num_nodes: int) -> float:
    r"""Entropy of uniform attention: mean of :math:`\log|\mathcal{N}(i)|` over nodes with edges."""
    degree = torch.bincount(edge_index[1], minlength=num_nodes)  # [N]
    degree = degree[degree > 0].double()
    return float(degree.log().mean()) if degree.numel() else float("nan")


@dataclass(frozen=True)
class LayerEntropy:
    """Attention entropy of one layer: per head, and of uniform attention on the same edges."""

    layer: str
    entropy: tuple[float, ...]
    uniform: float

    def format(self) -> str:
        """One line: ``layer: head 0 H=…, head 1 H=… (uniform log deg = …)``."""
        heads = ", ".join(f"head {h} {value:.4f}" for h, value in enumerate(self.entropy))
        return f"{self.layer}: {heads} (uniform: {self.uniform:.4f} nats)"


@torch.no_grad()
def layer_entropies(
    model: nn.Module, forward: Callable[[nn.Module], object], num_nodes: int
) -> list[LayerEntropy]:
    """Entropy of every GAT/GATv2 layer of ``model`` during ``forward(model)``, in eval mode.

    ``forward`` runs the model on one input (e.g. ``lambda m: m(x, edge_index)``);
    ``num_nodes`` is the number of target nodes of every layer.
    """
    was_training = model.training
    model.eval()
    try:
        with record_attention(model) as recorded:
            forward(model)
    finally:
        model.train(was_training)
    result = []
    for name, (edge_index, alpha) in recorded.items():
        entropy = attention_entropy(edge_index, alpha, num_nodes)
        result.append(
            LayerEntropy(
                layer=name,
                entropy=tuple(float(v) for v in entropy),
                uniform=uniform_entropy(edge_index, num_nodes),
            )
        )
    return result
