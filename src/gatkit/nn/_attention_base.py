"""What GATConv and GATv2Conv share: argument checks, self-loops, aggregation, output.

The two operators differ only in how they score an edge; everything around the score lives
here so that each operator's file shows its own equation and nothing else.
"""

from __future__ import annotations

import contextlib
import math

import torch
from torch import Tensor, nn

from gatkit import ops
from gatkit.errors import GraphInputError
from gatkit.nn.dropout import HeadwiseProjection
from gatkit.nn.recompute import LinearMap, dropped_inputs_as_recipes, recompute_projections
from gatkit.validation import check_edge_attr, check_edge_index, check_features

NodeFeatures = Tensor | tuple[Tensor, Tensor]


def glorot_(tensor: Tensor) -> None:
    """Glorot-uniform initialisation over the last two dimensions (as in the GAT code)."""
    fan_in, fan_out = tensor.size(-2), tensor.size(-1)
    bound = math.sqrt(6.0 / (fan_in + fan_out))
    with torch.no_grad():
        tensor.uniform_(-bound, bound)


def check_layer_arguments(
    in_channels: int | tuple[int, int],
    out_channels: int,
    heads: int,
    negative_slope: float,
    dropout: float,
    edge_dim: int | None,
    fill_value: float | Tensor | str,
    feature_dropout: float = 0.0,
    message_dropout: float = 0.0,
) -> None:
    """Refuse an impossible layer configuration with a message naming the argument."""
    pair = in_channels if isinstance(in_channels, tuple) else (in_channels,)
    if not all(isinstance(c, int) and c > 0 for c in pair) or len(pair) not in (1, 2):
        raise ValueError(
            f"in_channels must be a positive int or a (source, target) pair of positive ints, "
            f"got {in_channels!r}"
        )
    for name, value in (("out_channels", out_channels), ("heads", heads)):
        if not isinstance(value, int) or value <= 0:
            raise ValueError(f"{name} must be a positive int, got {value!r}")
    for name, value in (
        ("dropout", dropout),
        ("feature_dropout", feature_dropout),
        ("message_dropout", message_dropout),
    ):
        if not 0.0 <= value < 1.0:
            raise ValueError(f"{name} must lie in [0, 1), got {value!r}")
    if negative_slope < 0:
        raise ValueError(f"negative_slope must be >= 0, got {negative_slope!r}")
    if edge_dim is not None and (not isinstance(edge_dim, int) or edge_dim <= 0):
        raise ValueError(f"edge_dim must be None or a positive int, got {edge_dim!r}")
    if isinstance(fill_value, str) and fill_value not in ops.FILL_REDUCTIONS:
        raise ValueError(
            f"fill_value must be a number, a tensor or one of {ops.FILL_REDUCTIONS}, "
            f"got {fill_value!r}"
        )


class GraphAttentionBase(nn.Module):
    """Common state and steps of a multi-head graph attention layer (not used directly)."""

    def __init__(
        self,
        in_channels: int | tuple[int, int],
        out_channels: int,
        heads: int,
        concat: bool,
        negative_slope: float,
        dropout: float,
        add_self_loops: bool,
        edge_dim: int | None,
        fill_value: float | Tensor | str,
        bias: bool,
        residual: bool,
        feature_dropout: float = 0.0,
        message_dropout: float = 0.0,
    ) -> None:
        super().__init__()
        check_layer_arguments(
            in_channels,
            out_channels,
            heads,
            negative_slope,
            dropout,
            edge_dim,
            fill_value,
            feature_dropout,
            message_dropout,
        )
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.heads = heads
        self.concat = concat
        self.negative_slope = negative_slope
        self.dropout = dropout
        self.add_self_loops = add_self_loops
        self.edge_dim = edge_dim
        self.fill_value = fill_value
        self.residual = residual
        self.feature_dropout = feature_dropout
        self.message_dropout = message_dropout
        self.head_projection = HeadwiseProjection(heads, feature_dropout)
        self.out_width = out_channels * (heads if concat else 1)
        self.residual_projection = (
            nn.Linear(self.target_in_channels, self.out_width, bias=False) if residual else None
        )
        self.bias = nn.Parameter(torch.empty(self.out_width)) if bias else None
        # Set by gatkit.nn.record_attention: keep (edge_index, alpha) of the last forward.
        self.record_attention = False
        self.last_attention: tuple[Tensor, Tensor] | None = None

    @property
    def source_in_channels(self) -> int:
        """Width of the source (``x_j``) node features."""
        c = self.in_channels
        return c[0] if isinstance(c, tuple) else c

    @property
    def target_in_channels(self) -> int:
        """Width of the target (``x_i``) node features."""
        c = self.in_channels
        return c[1] if isinstance(c, tuple) else c

    def reset_output_parameters(self) -> None:
        """Glorot for the residual projection, zeros for the bias (as PyG and the GAT code)."""
        if self.residual_projection is not None:
            glorot_(self.residual_projection.weight)
        if self.bias is not None:
            nn.init.zeros_(self.bias)

    # -- steps of forward ------------------------------------------------------------------

    def split_inputs(self, x: NodeFeatures) -> tuple[Tensor, Tensor, bool]:
        """Return ``(x_src, x_dst, bipartite)`` after checking their shapes and values."""
        if isinstance(x, (tuple, list)):
            if len(x) != 2 or x[1] is None:
                raise GraphInputError(
                    "x must be a tensor or a (x_src, x_dst) pair of tensors, "
                    f"got a {type(x).__name__} of {len(x)} items"
                    + (" with x_dst=None" if len(x) == 2 else "")
                )
            x_src = check_features(x[0], "x[0] (source features)", self.source_in_channels)
            x_dst = check_features(x[1], "x[1] (target features)", self.target_in_channels)
            if x_src.dtype != x_dst.dtype:
                raise GraphInputError(
                    f"x[0] and x[1] must share a dtype, got {x_src.dtype} and {x_dst.dtype}"
                )
            return x_src, x_dst, True
        if isinstance(self.in_channels, tuple) and self.in_channels[0] != self.in_channels[1]:
            raise GraphInputError(
                f"the layer was built for bipartite input (in_channels={self.in_channels}); "
                "pass x as a (x_src, x_dst) pair"
            )
        x = check_features(x, "x", self.source_in_channels)
        return x, x, False

    def project(self, x: Tensor, linears: list[nn.Linear]) -> list[Tensor]:
        r""":math:`\mathbf{W}^k \mathrm{drop}_p^k(\mathbf{h})` ``[N, K, C]`` for each map.

        With ``feature_dropout`` :math:`p > 0` each head draws its own input mask (the GAT
        authors' code); the maps in ``linears`` share the masks. When ``x`` is a
        :func:`~gatkit.nn.recomputed_dropout.lean_dropout` output, the products keep its recipe
        for the backward pass instead of ``x``.
        """
        with dropped_inputs_as_recipes():
            return self.head_projection(x, linears)

    def keep_as_recipes(
        self, projections: list[tuple[Tensor, Tensor, nn.Linear | LinearMap]], active: bool = True
    ) -> contextlib.AbstractContextManager:
        """Save these ``(projected, source, linear)`` outputs of :meth:`project` as recipes.

        Within the returned context, autograd keeps ``(source, linear)`` instead of each
        ``[N, H, C]`` projection and forms it again in the backward pass
        (:func:`gatkit.nn.recompute.recompute_projections`); only for plain projections (no
        per-head input masks), only while gradients are recorded, and only when ``active``.
        """
        if not (active and torch.is_grad_enabled() and self.head_projection.is_plain):
            return contextlib.nullcontext()
        return recompute_projections(projections)

    def drop_messages(self, values: Tensor) -> Tensor | None:
        r"""``drop_p(W h_j)`` ``[N_s, K, C]`` for the aggregation only, or ``None`` if inactive.

        The GAT authors' code drops the projected features before
        :math:`\sum_j \alpha_{ij} \mathbf{W}\mathbf{h}_j` while the scores read them
        undropped (``message_dropout``).
        """
        if not self.training or self.message_dropout == 0.0:
            return None
        return nn.functional.dropout(values, p=self.message_dropout, training=True)

    def prepare_edges(
        self,
        edge_index: Tensor,
        edge_attr: Tensor | None,
        num_src: int,
        num_dst: int,
    ) -> tuple[Tensor, Tensor | None]:
        """Check the edge list (and features), then replace self-loops if configured.

        With ``add_self_loops`` the existing loops are removed and one loop ``i -> i`` is
        added for every ``i < min(num_src, num_dst)``, with features from ``fill_value``.
        """
        edge_index = check_edge_index(edge_index, num_src, num_dst)
        if edge_attr is not None:
            edge_attr = check_edge_attr(edge_attr, edge_index.size(1), self.edge_dim)
        if self.add_self_loops:
            edge_index, edge_attr = ops.remove_self_loops(edge_index, edge_attr)
            edge_index, edge_attr = ops.add_self_loops(
                edge_index,
                num_loops=min(num_src, num_dst),
                edge_attr=edge_attr,
                num_dst=num_dst,
                fill_value=self.fill_value,
            )
        return edge_index, edge_attr

    def prepare_graph(
        self,
        edge_index: Tensor,
        edge_attr: Tensor | None,
        num_src: int,
        num_dst: int,
        fused: bool,
    ) -> tuple[Tensor, Tensor | None, ops.EdgeCSR | None]:
        """:meth:`prepare_edges`, plus the sorted views the fused kernels need (if ``fused``).

        The CSR of the edges after self-loop handling depends only on the user's
        ``edge_index`` tensor, the node counts and ``add_self_loops``; it is cached per
        ``edge_index`` tensor (:func:`gatkit.ops.cached_by_edge_index`), so the layers of one
        model sort a graph once. The fused path without edge features keeps no edge list
        (``None`` is returned in its place): :meth:`finish` forms it from the CSR
        (:func:`gatkit.ops.edge_list`) only when attention weights are asked for. Edge
        features are prepared again every call.
        """
        if not fused:
            return (*self.prepare_edges(edge_index, edge_attr, num_src, num_dst), None)
        user_index = edge_index
        key = ("gat-layer-csr", self.add_self_loops, num_src, num_dst)
        if edge_attr is None:

            def make() -> ops.EdgeCSR:
                prepared, _ = self.prepare_edges(user_index, None, num_src, num_dst)
                return ops.build_csr(prepared, num_src, num_dst)

            check_edge_index(user_index, num_src, num_dst)
            return None, None, ops.cached_by_edge_index(user_index, key, make)
        prepared, edge_attr = self.prepare_edges(edge_index, edge_attr, num_src, num_dst)
        csr = ops.cached_by_edge_index(
            user_index, key, lambda: ops.build_csr(prepared, num_src, num_dst)
        )
        return prepared, edge_attr, csr

    def attention_dropout(
        self, num_edges: int, device: torch.device
    ) -> ops.AttentionDropout | None:
        """The ``[E, H]`` attention-dropout mask for the fused kernels (``None`` when inactive)."""
        return ops.attention_dropout(num_edges, self.heads, self.dropout, self.training, device)

    def wants_attention(self, return_attention_weights: bool) -> bool:
        """Whether this forward must produce ``alpha`` (returned or recorded)."""
        return bool(return_attention_weights or self.record_attention)

    def attend(self, scores: Tensor, dst: Tensor, num_dst: int) -> Tensor:
        r"""``α_ij = softmax_j(e_ij)`` over each destination's in-edges, then attention dropout.

        The mask comes from :func:`gatkit.ops.attention_dropout`, as in the fused path (with
        the ``"torch"`` mask generator it is ``F.dropout``'s mask).
        """
        alpha = ops.segment_softmax(scores, dst, num_dst)  # [E, H]
        drop = self.attention_dropout(alpha.size(0), alpha.device)
        return alpha if drop is None else alpha * drop.scale(alpha.dtype)

    def remember_attention(self, edge_index: Tensor, alpha: Tensor) -> None:
        """Keep a detached copy of this forward's attention when recording is switched on."""
        if self.record_attention:
            self.last_attention = (edge_index.detach(), alpha.detach())

    def finish(
        self,
        out: Tensor,
        edge_index: Tensor | None,
        alpha: Tensor | None,
        dropout: ops.AttentionDropout | None,
        return_attention_weights: bool,
        csr: ops.EdgeCSR | None = None,
    ) -> Tensor | tuple[Tensor, tuple[Tensor, Tensor]]:
        """Record and/or return ``(edge_index, alpha [E', H])``; alpha after dropout.

        ``edge_index`` ``None`` (the fused path keeps no edge list) is formed from ``csr``.
        """
        if alpha is None or not self.wants_attention(return_attention_weights):
            return out
        if edge_index is None:
            assert csr is not None, "finish needs the edge list or its CSR"
            edge_index = ops.edge_list(csr)
        if dropout is not None:
            alpha = alpha * dropout.scale(alpha.dtype)  # F.dropout(alpha) of the reference path
        self.remember_attention(edge_index, alpha)
        if return_attention_weights:
            return out, (edge_index, alpha)
        return out

    def aggregate(self, alpha: Tensor, messages_src: Tensor, edge_index: Tensor, num_dst: int):
        r""":math:`\sum_{j \in \mathcal{N}(i)} \alpha_{ij} m_j` per head, ``[N_dst, H, C]``."""
        src, dst = edge_index
        messages = ops.gather(messages_src, src) * alpha.unsqueeze(-1)  # [E, H, C]
        return ops.segment_sum(messages, dst, num_dst)  # [N_dst, H, C]

    def combine_heads(self, out: Tensor, x_dst: Tensor) -> Tensor:
        """Concatenate or average the heads ``[N, H, C]``, then add the residual and the bias."""
        # In place: the attention output is a fresh tensor that no backward pass reads, so
        # the sums need no second buffer. With concatenated heads they are added to the
        # [N, H, C] tensor itself, not to its [N, H C] view: an in-place write through a view
        # would make autograd copy the whole gradient twice (CopySlices, AsStrided). One head
        # is its own mean: averaging it would only copy it.
        if self.concat or out.size(1) == 1:
            if self.residual_projection is not None:
                out = out.add_(self.residual_projection(x_dst).view_as(out))
            if self.bias is not None:
                out = out.add_(self.bias.view(out.shape[1:]))
            return out.reshape(out.size(0), self.out_width)
        out = out.mean(dim=1)
        if self.residual_projection is not None:
            out = out.add_(self.residual_projection(x_dst))
        if self.bias is not None:
            out = out.add_(self.bias)
        return out

    def __repr__(self) -> str:
        extra = []
        if not self.concat:
            extra.append("concat=False")
        if self.edge_dim is not None:
            extra.append(f"edge_dim={self.edge_dim}")
        if self.residual:
            extra.append("residual=True")
        tail = "".join(f", {e}" for e in extra)
        return (
            f"{type(self).__name__}({self.in_channels}, {self.out_channels}, "
            f"heads={self.heads}{tail})"
        )
