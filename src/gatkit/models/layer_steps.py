r"""A node classifier as a sequence of per-layer steps, for blocks and layer-wise inference.

Mini-batch training and layer-wise inference do not run a model on one graph: layer
:math:`\ell` runs on a bipartite graph from source nodes to destination nodes, with the
destinations being the first ``num_dst`` sources. A model takes part when its layer
:math:`\ell` can be applied on its own:

.. math::
    \mathbf{H}^{(\ell)}_{\text{dst}} = \mathrm{step}_\ell\big(\mathbf{H}^{(\ell-1)}_{\text{src}},
        E_\ell\big), \qquad
    \mathbf{H}^{(\ell-1)}_{\text{dst}} = \mathbf{H}^{(\ell-1)}_{\text{src}}[:N_{\text{dst}}].

A model provides ``num_layers`` and ``forward_layer(index, x_src, num_dst, edge_index)``
(:class:`gatkit.models.residual_gat.ResidualGAT` does); :class:`gatkit.models.GAT` is
supported here by :func:`gat_forward_layer`, which repeats its per-layer step: input
dropout, attention layer, ELU between layers. Applying every step with ``num_dst = N`` and
the whole edge list gives the model's full-graph ``forward``.
"""

from __future__ import annotations

from torch import Tensor, nn

from gatkit.models.gat import GAT

__all__ = ["forward_layer", "gat_forward_layer", "model_num_layers"]


def gat_forward_layer(
    model: GAT, index: int, x_src: Tensor, num_dst: int, edge_index: Tensor
) -> Tensor:
    r"""Layer ``index`` of :class:`GAT` on a bipartite graph, ``[N_dst, K F']`` or ``[N_dst, C]``.

    :math:`\mathbf{H}_{\text{dst}} = \mathrm{ELU}(\mathrm{Att}((\mathrm{drop}_p
    \mathbf{H}_{\text{src}}, \mathrm{drop}_p \mathbf{H}_{\text{src}}[:N_{\text{dst}}]),
    E))`, without the ELU on the output layer (as :meth:`GAT.forward`).
    """
    x_src = nn.functional.dropout(x_src, p=model.config.dropout, training=model.training)
    out = model.layers[index]((x_src, x_src[:num_dst]), edge_index)  # [N_dst, width]
    if index < len(model.layers) - 1:
        out = nn.functional.elu(out)
    return out


def model_num_layers(model: nn.Module) -> int:
    """Number of per-layer steps of ``model`` (see module docstring)."""
    if isinstance(model, GAT):
        return len(model.layers)
    count = getattr(model, "num_layers", None)
    if isinstance(count, int) and hasattr(model, "forward_layer"):
        return count
    raise TypeError(
        f"model must be a gatkit GAT or provide num_layers and forward_layer(index, x_src, "
        f"num_dst, edge_index), got {type(model).__name__}"
    )


def forward_layer(
    model: nn.Module, index: int, x_src: Tensor, num_dst: int, edge_index: Tensor
) -> Tensor:
    """Layer ``index`` of ``model`` from ``x_src`` ``[N_src, F]`` to ``[N_dst, F']``.

    ``edge_index`` ``[2, E]`` holds local ids: row 0 in ``[0, N_src)``, row 1 in
    ``[0, num_dst)``; the destinations are the first ``num_dst`` sources.
    """
    if isinstance(model, GAT):
        return gat_forward_layer(model, index, x_src, num_dst, edge_index)
    model_num_layers(model)  # raises TypeError for unsupported models
    return model.forward_layer(index, x_src, num_dst, edge_index)
