r"""GATv2: the dynamic graph attention of Brody, Alon, Yahav, "How Attentive are GATs?" (2022)."""

from __future__ import annotations

from typing import Literal, overload

import torch
from torch import Tensor, nn

from gatkit import ops
from gatkit.nn._attention_base import GraphAttentionBase, NodeFeatures, glorot_
from gatkit.nn.recompute import LinearMap, dropped_inputs_as_recipes


class GATv2Conv(GraphAttentionBase):
    r"""The GATv2 operator of Brody, Alon and Yahav, ICLR 2022.

    .. math::
        \mathbf{h}_i' = \mathbin\Vert_{k=1}^{K}
            \sum_{j \in \mathcal{N}(i) \cup \{i\}} \alpha_{ij}^{k} \mathbf{W}_s^{k} \mathbf{h}_j

    with the attention coefficients of head :math:`k`

    .. math::
        e_{ij} = \mathbf{a}^\top \mathrm{LeakyReLU}\left(
            \mathbf{W}_s \mathbf{h}_j + \mathbf{W}_t \mathbf{h}_i
            \,[+\, \mathbf{W}_e \mathbf{e}_{ij}]\right),
        \qquad
        \alpha_{ij} = \frac{\exp(e_{ij})}{\sum_{k \in \mathcal{N}(i) \cup \{i\}} \exp(e_{ik})}.

    Applying :math:`\mathbf{a}` *after* the non-linearity makes the ranking of neighbours
    :math:`j` depend on the query :math:`i`: *dynamic* attention, which GAT cannot express.
    :math:`\mathbf{W}_s` and :math:`\mathbf{W}_t` carry a bias each (as in the authors' code
    and PyG); with ``share_weights=True`` they are one matrix. The edge term is present only
    when the layer has ``edge_dim`` and ``edge_attr`` is given.

    Args:
        in_channels: width of :math:`\mathbf{h}`, or ``(source, target)`` widths.
        out_channels: width :math:`F'` of each head's output.
        heads: number of heads :math:`K`.
        concat: concatenate the heads (``True``) or average them (``False``).
        negative_slope: slope of LeakyReLU for negative inputs (paper: 0.2).
        dropout: dropout probability on the normalised coefficients :math:`\alpha_{ij}`.
        add_self_loops: remove existing loops and add one loop :math:`i \to i` per node.
        edge_dim: width of :math:`\mathbf{e}_{ij}`; ``None`` for no edge features.
        fill_value: features of added loops: a number, a ``[edge_dim]`` tensor, or one of
            ``"mean"``, ``"add"``, ``"max"``, ``"min"``, ``"mul"`` over incoming edges.
        bias: biases in :math:`\mathbf{W}_s, \mathbf{W}_t` and on the output.
        share_weights: use one matrix for :math:`\mathbf{W}_s` and :math:`\mathbf{W}_t`.
        residual: add a linear projection of the target input to the output.
        feature_dropout: dropout on the input :math:`\mathbf{h}` with an independent mask
            per head (as the GAT authors' code; PyG leaves input dropout to the model).
        message_dropout: dropout on :math:`\mathbf{W}_s\mathbf{h}_j` in the weighted sum
            only (as the GAT authors' code); the scores read the undropped projection.

    Shapes:
        - input: ``x`` ``[N, F_in]`` or ``([N_s, F_s], [N_t, F_t])``; ``edge_index``
          ``[2, E]`` (row 0 source :math:`j`, row 1 target :math:`i`); ``edge_attr``
          ``[E, edge_dim]`` (optional).
        - output: ``[N_t, K F']`` with ``concat=True``, else ``[N_t, F']``; with
          ``return_attention_weights=True`` also ``(edge_index_used [2, E'], alpha [E', K])``.
    """

    def __init__(
        self,
        in_channels: int | tuple[int, int],
        out_channels: int,
        heads: int = 1,
        concat: bool = True,
        negative_slope: float = 0.2,
        dropout: float = 0.0,
        add_self_loops: bool = True,
        edge_dim: int | None = None,
        fill_value: float | Tensor | str = "mean",
        bias: bool = True,
        share_weights: bool = False,
        residual: bool = False,
        feature_dropout: float = 0.0,
        message_dropout: float = 0.0,
    ) -> None:
        super().__init__(
            in_channels,
            out_channels,
            heads,
            concat,
            negative_slope,
            dropout,
            add_self_loops,
            edge_dim,
            fill_value,
            bias,
            residual,
            feature_dropout,
            message_dropout,
        )
        if share_weights and self.source_in_channels != self.target_in_channels:
            raise ValueError(
                "share_weights=True needs equal source and target widths, got "
                f"in_channels={in_channels}"
            )
        self.share_weights = share_weights
        width = heads * out_channels
        self.project_source = nn.Linear(self.source_in_channels, width, bias=bias)  # W_s
        self.project_target = (  # W_t; None when shared with W_s
            None if share_weights else nn.Linear(self.target_in_channels, width, bias=bias)
        )
        self.att = nn.Parameter(Tensor(heads, out_channels))  # a, [H, C]
        self.project_edge = nn.Linear(edge_dim, width, bias=False) if edge_dim else None  # W_e
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Glorot-uniform weights and attention vector, zero biases."""
        for linear in (self.project_source, self.project_target, self.project_edge):
            if linear is not None:
                glorot_(linear.weight)
                if linear.bias is not None:
                    nn.init.zeros_(linear.bias)
        glorot_(self.att)
        self.reset_output_parameters()

    @overload
    def forward(
        self,
        x: NodeFeatures,
        edge_index: Tensor,
        edge_attr: Tensor | None = ...,
        return_attention_weights: Literal[False] = ...,
    ) -> Tensor: ...

    @overload
    def forward(
        self,
        x: NodeFeatures,
        edge_index: Tensor,
        edge_attr: Tensor | None = ...,
        return_attention_weights: Literal[True] = ...,
    ) -> tuple[Tensor, tuple[Tensor, Tensor]]: ...

    def forward(
        self,
        x: NodeFeatures,
        edge_index: Tensor,
        edge_attr: Tensor | None = None,
        return_attention_weights: bool = False,
    ) -> Tensor | tuple[Tensor, tuple[Tensor, Tensor]]:
        """Apply the layer; see the class docstring for the equations and shapes."""
        H, C = self.heads, self.out_channels
        x_src, x_dst, bipartite = self.split_inputs(x)
        num_src, num_dst = x_src.size(0), x_dst.size(0)
        kernels = ops.kernels_for(x_src.device, x_src.dtype)  # None: reference primitives
        edge_index, edge_attr, csr = self.prepare_graph(
            edge_index, edge_attr, num_src, num_dst, fused=kernels is not None
        )

        # W_s h_j and W_t h_i, per head.
        target_projection = self.project_target or self.project_source
        pair = both = None
        if bipartite:
            (ws_h,) = self.project(x_src, [self.project_source])  # [N_s, H, C]
            (wt_h,) = self.project(x_dst, [target_projection])  # [N_t, H, C]
        elif self.project_target is None:
            (ws_h,) = self.project(x_src, [self.project_source])  # [N, H, C]
            wt_h = ws_h
        elif kernels is not None and kernels.pair_layout and self.head_projection.is_plain:
            # One product with [W_s; W_t]: pair [N, 2, H, C], read in place by the kernels,
            # whose gradient comes back as one tensor (one product in the backward pass too).
            both = self.stacked_maps()
            with dropped_inputs_as_recipes():
                pair = nn.functional.linear(x_src, both.weight, both.bias).view(num_src, 2, H, C)
            ws_h, wt_h = pair[:, 0], pair[:, 1]
        else:  # one input, so one set of head masks for both maps
            ws_h, wt_h = self.project(x_src, [self.project_source, self.project_target])
        dropped = self.drop_messages(ws_h)  # [N_s, H, C] or None

        if kernels is not None:
            # One fused pass per destination: e_ij, α_ij, Σ_j α_ij W_s h_j; the [E, H, C]
            # hidden is recomputed per segment, never stored (W_e e_ij is formed inside).
            use_edges = edge_attr is not None and self.project_edge is not None
            drop = self.attention_dropout(csr.num_edges, ws_h.device)  # [E, H] mask or None
            # Autograd keeps (h, W_s) and (h, W_t) in place of W_s h and W_t h.
            if pair is not None:
                projections = [(pair, x_src, both)]
            else:
                projections = [(ws_h, x_src, self.project_source)]
                if wt_h is not ws_h:
                    projections.append((wt_h, x_dst, target_projection))
            with self.keep_as_recipes(projections):
                out, alpha = ops.gatv2_attention(
                    kernels,
                    csr,
                    None if pair is not None else ws_h,
                    None if pair is not None else wt_h,
                    self.att,
                    edge_attr if use_edges else None,
                    self.project_edge.weight if use_edges else None,
                    self.negative_slope,
                    drop,
                    dropped,
                    need_attention=self.wants_attention(return_attention_weights),
                    pair=pair,
                )  # [N_t, H, C], [E, H] or None
            out = self.combine_heads(out, x_dst)  # [N_t, H C] or [N_t, C]
            return self.finish(out, edge_index, alpha, drop, return_attention_weights, csr)

        # e_ij = aᵀ LeakyReLU(W_s h_j + W_t h_i [+ W_e e_ij]).
        src, dst = edge_index  # j, i
        hidden = ops.gather(ws_h, src) + ops.gather(wt_h, dst)  # [E, H, C]
        if edge_attr is not None and self.project_edge is not None:
            hidden = hidden + self.project_edge(edge_attr).view(-1, H, C)  # [E, H, C]
        hidden = nn.functional.leaky_relu(hidden, self.negative_slope)
        scores = (hidden * self.att).sum(-1)  # [E, H]

        # α_ij = softmax_j(e_ij); h_i' = Σ_j α_ij W_s h_j.
        alpha = self.attend(scores, dst, num_dst)  # [E, H]
        messages = ws_h if dropped is None else dropped
        out = self.aggregate(alpha, messages, edge_index, num_dst)  # [N_t, H, C]
        out = self.combine_heads(out, x_dst)  # [N_t, H C] or [N_t, C]
        return self.finish(out, edge_index, alpha, None, return_attention_weights)

    def stacked_maps(self) -> LinearMap:
        """:math:`[\\mathbf{W}_s; \\mathbf{W}_t]` ``[2 H C, F]`` and their biases, stacked."""
        source, target = self.project_source, self.project_target
        assert target is not None, "stacked maps need separate W_s and W_t"
        weight = torch.cat([source.weight, target.weight])
        bias = None if source.bias is None else torch.cat([source.bias, target.bias])
        return LinearMap(weight, bias)

    def __repr__(self) -> str:
        base = super().__repr__()
        return base[:-1] + ", share_weights=True)" if self.share_weights else base
