r"""Per-head attention scores :math:`\mathbf{a}_k^\top \mathbf{W}^h\mathbf{h}_n` of every node.

GAT's score splits into a source and a target term, each a dot product of one node's
projection with one attention vector per head:

.. math::
    s^{k}_{n h} = \sum_{c} (\mathbf{W}\mathbf{h}_n)_{h c}\, a^{k}_{h c},
    \qquad k = 1 \dots K \text{ (e.g. } \mathbf{a}_s, \mathbf{a}_t).

Written as ``(projected * a).sum(-1)``, autograd forms an ``[N, H, C]`` product in the
forward pass and two more in the backward pass, for every vector :math:`\mathbf{a}^k`. Here
the :math:`K` vectors are laid out as one block-diagonal matrix
:math:`B \in \mathbb{R}^{HC \times KH}`, so the scores are one matrix product
:math:`S = P B` of the ``[N, HC]`` projection :math:`P`, and backward is two more:

.. math::
    \frac{\partial L}{\partial P} = \frac{\partial L}{\partial S} B^\top, \qquad
    \frac{\partial L}{\partial a^{k}_{h c}}
      = \Big(P^\top \frac{\partial L}{\partial S}\Big)_{hC + c,\; kH + h}.

The only ``[N, H, C]`` tensor formed is the gradient of :math:`P` itself (one, for all
:math:`K` vectors together). The projection is saved as the very tensor passed in, so a
layer that keeps it as a recipe (:mod:`gatkit.nn.recompute`) keeps no copy.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["head_scores"]


def _block_diagonal(atts: tuple[Tensor, ...]) -> Tensor:
    """``B [H C, K H]`` with ``B[h C + c, k H + h] = atts[k][h, c]`` and zeros elsewhere."""
    heads, channels = atts[0].shape
    eye = torch.eye(heads, dtype=atts[0].dtype, device=atts[0].device)  # [H, H]
    stacked = torch.stack(atts, dim=1)  # [H, K, C]
    block = stacked.permute(0, 2, 1).unsqueeze(-1) * eye.view(heads, 1, 1, heads)  # [H, C, K, H]
    return block.reshape(heads * channels, len(atts) * heads)


class _HeadScores(torch.autograd.Function):
    @staticmethod
    def forward(ctx, projected: Tensor, *atts: Tensor) -> Tensor:  # noqa: ANN001
        num_nodes, heads, channels = projected.shape
        block = _block_diagonal(atts)
        scores = projected.reshape(num_nodes, heads * channels) @ block  # [N, K H]
        ctx.save_for_backward(projected, *atts)
        return scores.view(num_nodes, len(atts), heads)

    @staticmethod
    def backward(ctx, grad_scores: Tensor) -> tuple[Tensor | None, ...]:  # noqa: ANN001
        projected, *atts = ctx.saved_tensors
        num_nodes, heads, channels = projected.shape
        grad = grad_scores.reshape(num_nodes, len(atts) * heads)
        block = _block_diagonal(tuple(atts))
        grad_projected = None
        if ctx.needs_input_grad[0]:
            grad_projected = (grad @ block.t()).view(num_nodes, heads, channels)
        grad_atts: list[Tensor | None] = [None] * len(atts)
        if any(ctx.needs_input_grad[1:]):
            full = projected.reshape(num_nodes, heads * channels).t() @ grad  # [H C, K H]
            per_head = torch.diagonal(full.view(heads, channels, len(atts), heads), 0, 0, 3)
            grads = per_head.permute(1, 2, 0)  # [K, H, C]
            grad_atts = [
                grads[k].contiguous() if ctx.needs_input_grad[1 + k] else None
                for k in range(len(atts))
            ]
        return (grad_projected, *grad_atts)


def head_scores(projected: Tensor, *atts: Tensor) -> tuple[Tensor, ...]:
    r"""``(s^1, …, s^K)``, each ``[N, H]``: :math:`s^k_{nh} = \sum_c P_{nhc}\, a^k_{hc}`.

    Args:
        projected: :math:`\mathbf{W}\mathbf{h}` as ``[N, H, C]``.
        atts: one or more attention vectors, each ``[H, C]``.

    Differentiable in all inputs; see the module docstring for the products it runs.
    """
    if not atts:
        raise ValueError("head_scores needs at least one attention vector")
    if projected.dim() != 3 or any(a.shape != projected.shape[1:] for a in atts):
        raise ValueError(
            f"head_scores expects projected [N, H, C] and vectors [H, C], got "
            f"{tuple(projected.shape)} and {[tuple(a.shape) for a in atts]}"
        )
    scores = _HeadScores.apply(projected.contiguous(), *atts)  # [N, K, H]
    return tuple(scores[:, k] for k in range(len(atts)))
