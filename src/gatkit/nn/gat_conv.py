r"""GAT: the graph attentional operator of Veličković et al., "Graph Attention Networks" (2018)."""

from __future__ import annotations

from typing import Literal, overload

from torch import Tensor, nn

from gatkit import ops
from gatkit.nn._attention_base import GraphAttentionBase, NodeFeatures, glorot_
from gatkit.ops.head_scores import head_scores


class GATConv(GraphAttentionBase):
    r"""The graph attentional operator (GAT) of Veličković et al., ICLR 2018.

    .. math::
        \mathbf{h}_i' = \mathbin\Vert_{k=1}^{K}
            \sum_{j \in \mathcal{N}(i) \cup \{i\}} \alpha_{ij}^{k} \mathbf{W}^{k} \mathbf{h}_j

    with the attention coefficients of head :math:`k`

    .. math::
        e_{ij} = \mathrm{LeakyReLU}\left(\mathbf{a}^\top
            [\mathbf{W}\mathbf{h}_i \,\Vert\, \mathbf{W}\mathbf{h}_j
             \,\Vert\, \mathbf{W}_e \mathbf{e}_{ij}]\right)
            = \mathrm{LeakyReLU}\left(\mathbf{a}_t^\top \mathbf{W}\mathbf{h}_i
              + \mathbf{a}_s^\top \mathbf{W}\mathbf{h}_j
              + \mathbf{a}_e^\top \mathbf{W}_e \mathbf{e}_{ij}\right),
        \qquad
        \alpha_{ij} = \frac{\exp(e_{ij})}{\sum_{k \in \mathcal{N}(i) \cup \{i\}} \exp(e_{ik})}.

    Splitting :math:`\mathbf{a}` into the target, source and edge parts makes the score a
    sum of per-node terms, so the layer needs :math:`O(N H F + E H)` memory: one scalar per
    node and head on each side, one per edge and head after the gather. The edge term is
    present only when the layer has ``edge_dim`` and ``edge_attr`` is given. With
    ``concat=False`` the :math:`K` heads are averaged instead of concatenated (the paper's
    output layer). Because the score is monotone in :math:`\mathbf{a}_s^\top\mathbf{W}\mathbf{h}_j`
    for every :math:`i`, GAT's ranking of neighbours is the same for every query: *static*
    attention (Brody et al., 2022).

    Args:
        in_channels: width of :math:`\mathbf{h}`, or ``(source, target)`` widths for a
            bipartite graph (then :math:`\mathbf{W}` is split into :math:`\mathbf{W}_s` and
            :math:`\mathbf{W}_t`).
        out_channels: width :math:`F'` of each head's output.
        heads: number of heads :math:`K`.
        concat: concatenate the heads (``True``) or average them (``False``).
        negative_slope: slope of LeakyReLU for negative inputs (paper: 0.2).
        dropout: dropout probability on the normalised coefficients :math:`\alpha_{ij}`.
        add_self_loops: remove existing loops and add one loop :math:`i \to i` per node.
        edge_dim: width of :math:`\mathbf{e}_{ij}`; ``None`` for no edge features.
        fill_value: features of added loops: a number, a ``[edge_dim]`` tensor, or a
            reduction of the node's incoming edge features: ``"mean"``, ``"add"``, ``"max"``,
            ``"min"``, ``"mul"``.
        bias: add a learnable bias to the output.
        residual: add a linear projection of the target input to the output.
        feature_dropout: dropout on the input :math:`\mathbf{h}` with an independent mask
            per head (the GAT authors' code; PyG leaves input dropout to the model).
        message_dropout: dropout on :math:`\mathbf{W}\mathbf{h}_j` in the weighted sum only
            (the GAT authors' code); the scores read the undropped projection.

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
        width = heads * out_channels
        # W (shared by both ends) or, for bipartite input, W_s and W_t.
        self.project_source = nn.Linear(self.source_in_channels, width, bias=False)
        self.project_target = (
            nn.Linear(self.target_in_channels, width, bias=False)
            if isinstance(in_channels, tuple)
            else None
        )
        self.att_source = nn.Parameter(Tensor(heads, out_channels))  # a_s, [H, C]
        self.att_target = nn.Parameter(Tensor(heads, out_channels))  # a_t, [H, C]
        if edge_dim is not None:
            self.project_edge = nn.Linear(edge_dim, width, bias=False)  # W_e
            self.att_edge = nn.Parameter(Tensor(heads, out_channels))  # a_e, [H, C]
        else:
            self.project_edge = None
            self.att_edge = None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Glorot-uniform weights and attention vectors, zero bias."""
        for linear in (self.project_source, self.project_target, self.project_edge):
            if linear is not None:
                glorot_(linear.weight)
        for att in (self.att_source, self.att_target, self.att_edge):
            if att is not None:
                glorot_(att)
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

        # W h_j and W h_i, per head.
        (wh_src,) = self.project(x_src, [self.project_source])  # [N_s, H, C]
        if bipartite:
            target_projection = self.project_target or self.project_source
            (wh_dst,) = self.project(x_dst, [target_projection])  # [N_t, H, C]
        else:
            wh_dst = wh_src
        dropped = self.drop_messages(wh_src)  # [N_s, H, C] or None
        messages = wh_src if dropped is None else dropped

        # The fused path keeps (h, W) in place of W h for the backward pass.
        projections = [(wh_src, x_src, self.project_source)]
        if bipartite:
            projections.append((wh_dst, x_dst, target_projection))
        with self.keep_as_recipes(projections, active=kernels is not None):
            # a_sᵀ W h_j and a_tᵀ W h_i: one scalar per node and head.
            # One matrix product for both when they read the same projection.
            if bipartite:
                (score_src,) = head_scores(wh_src, self.att_source)  # [N_s, H]
                (score_dst,) = head_scores(wh_dst, self.att_target)  # [N_t, H]
            else:
                score_src, score_dst = head_scores(wh_src, self.att_source, self.att_target)

            if kernels is not None:
                # One fused pass per destination: e_ij, α_ij = softmax_j(e_ij), Σ_j α_ij W h_j.
                edge_score = None
                if edge_attr is not None and self.project_edge is not None:
                    # a_eᵀ W_e e_ij = e_ij · (W_eᵀ a_e): an [edge_dim, H] matrix, no [E, H, C].
                    we = self.project_edge.weight.view(H, C, -1)  # [H, C, D]
                    att_edge = (we * self.att_edge.unsqueeze(-1)).sum(1)  # [H, D]
                    edge_score = edge_attr @ att_edge.t()  # [E, H]
                drop = self.attention_dropout(csr.num_edges, score_src.device)  # [E, H] or None
                out, alpha = ops.gat_attention(
                    kernels,
                    csr,
                    score_src,
                    score_dst,
                    edge_score,
                    messages,
                    self.negative_slope,
                    drop,
                    need_attention=self.wants_attention(return_attention_weights),
                )  # [N_t, H, C], [E, H] or None
                out = self.combine_heads(out, x_dst)  # [N_t, H C] or [N_t, C]
                return self.finish(out, edge_index, alpha, drop, return_attention_weights, csr)

            # e_ij = LeakyReLU(a_tᵀ W h_i + a_sᵀ W h_j [+ a_eᵀ W_e e_ij]).
            src, dst = edge_index  # j, i
            scores = ops.gather(score_src, src) + ops.gather(score_dst, dst)  # [E, H]
            if edge_attr is not None and self.project_edge is not None:
                we = self.project_edge(edge_attr).view(-1, H, C)  # [E, H, C]
                scores = scores + (we * self.att_edge).sum(-1)  # [E, H]
            scores = nn.functional.leaky_relu(scores, self.negative_slope)

            # α_ij = softmax_j(e_ij); h_i' = Σ_j α_ij W h_j.
            alpha = self.attend(scores, dst, num_dst)  # [E, H]
            out = self.aggregate(alpha, messages, edge_index, num_dst)  # [N_t, H, C]
            out = self.combine_heads(out, x_dst)  # [N_t, H C] or [N_t, C]

            return self.finish(out, edge_index, alpha, None, return_attention_weights)
