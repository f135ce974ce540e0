r"""A graph classifier: GATv2 layers with edge features → global readout → MLP.

For a graph with node features :math:`\mathbf{x}_i` and categorical edge labels
:math:`c_{ij}`:

.. math::
    \mathbf{e}_{ij} = \mathbf{E}[c_{ij}] \qquad \text{(learned edge-label embedding)}

.. math::
    \mathbf{h}^{(0)}_i = \mathbf{x}_i, \qquad
    \mathbf{h}^{(\ell)}_i = \mathrm{ELU}\Big(\mathrm{GATv2}^{(\ell)}\big(
        \mathrm{drop}_p(\mathbf{h}^{(\ell-1)}), \mathbf{e}\big)_i\Big),
    \quad \ell = 1 \dots L

with the GATv2 score reading the edge feature inside the non-linearity (Brody et al., 2022),
:math:`e_{ij} = \mathbf{a}^\top \mathrm{LeakyReLU}(\mathbf{W}_s \mathbf{h}_j +
\mathbf{W}_t \mathbf{h}_i + \mathbf{W}_e \mathbf{e}_{ij})`. The added self-loops get the mean
of a node's incoming edge embeddings (``fill_value="mean"``). Then a readout over the nodes
:math:`V` of the graph and a two-layer MLP give the class logits:

.. math::
    \mathbf{g} = \sum_{i \in V} \beta_i \mathbf{h}^{(L)}_i, \quad
    \beta = \mathrm{softmax}_{i \in V}\big(\mathrm{gate}(\mathbf{h}^{(L)}_i)\big)
    \qquad \text{(or the mean, sum, max)}

.. math::
    \mathbf{z} = \mathbf{W}_2\, \mathrm{drop}_p\big(\mathrm{ELU}(\mathbf{W}_1 \mathbf{g}
        + \mathbf{b}_1)\big) + \mathbf{b}_2 .

The ablation switches are :attr:`GraphClassifierConfig.edge_features` (drop :math:`\mathbf{e}`
and :math:`\mathbf{W}_e`) and :attr:`GraphClassifierConfig.pooling`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from torch import Tensor, nn

from gatkit.errors import GraphInputError
from gatkit.models.config import require_choice, require_positive_ints, require_probabilities
from gatkit.nn import (
    GATv2Conv,
    GlobalAttentionPool,
    global_max_pool,
    global_mean_pool,
    global_sum_pool,
)

__all__ = ["POOLINGS", "GraphClassifier", "GraphClassifierConfig"]

#: Readouts :class:`GraphClassifier` can use.
POOLINGS = ("attention", "mean", "sum", "max")


@dataclass
class GraphClassifierConfig:
    """Architecture of :class:`GraphClassifier`.

    The defaults were fixed before any cross-validation run (they are common choices for
    small molecule graphs, not tuned on MUTAG or PROTEINS).

    Attributes:
        in_channels: node feature width ``F`` (MUTAG: 7 one-hot atom types).
        num_classes: number of graph classes ``C``.
        num_edge_labels: number of edge label categories (MUTAG: 4 bond types); 0 for none.
        edge_features: feed the embedded edge labels to the attention (``False`` for the
            ablation; ignored when ``num_edge_labels == 0``).
        edge_embedding_dim: width of the edge-label embedding :math:`\\mathbf{e}_{ij}`.
        pooling: readout, one of :data:`POOLINGS`.
        hidden_channels: width of every layer's output (all heads together).
        heads: attention heads per layer (concatenated; ``hidden_channels`` must divide).
        num_layers: number of GATv2 layers :math:`L`.
        dropout: dropout on every layer's input and in the MLP.
        attention_dropout: dropout on the attention coefficients :math:`\\alpha_{ij}`.
        residual: add a linear projection of a layer's input to its output.
    """

    in_channels: int
    num_classes: int
    num_edge_labels: int = 0
    edge_features: bool = True
    edge_embedding_dim: int = 16
    pooling: str = "attention"
    hidden_channels: int = 64
    heads: int = 4
    num_layers: int = 3
    dropout: float = 0.1
    attention_dropout: float = 0.0
    residual: bool = True

    def __post_init__(self) -> None:
        require_positive_ints(
            self,
            (
                "in_channels",
                "num_classes",
                "edge_embedding_dim",
                "hidden_channels",
                "heads",
                "num_layers",
            ),
        )
        if not isinstance(self.num_edge_labels, int) or self.num_edge_labels < 0:
            raise ValueError(f"num_edge_labels must be an int >= 0, got {self.num_edge_labels!r}")
        if self.hidden_channels % self.heads:
            raise ValueError(
                f"hidden_channels ({self.hidden_channels}) must be divisible by heads "
                f"({self.heads})"
            )
        require_choice(self, "pooling", POOLINGS)
        require_probabilities(self, ("dropout", "attention_dropout"))

    @property
    def uses_edge_features(self) -> bool:
        """Whether the layers read embedded edge labels."""
        return self.edge_features and self.num_edge_labels > 0

    def to_dict(self) -> dict[str, Any]:
        """Plain ``dict`` of the fields (for JSON and checkpoints)."""
        return dataclasses.asdict(self)


class GraphClassifier(nn.Module):
    """GATv2 layers with edge-label embeddings, a global readout and an MLP.

    See the module docstring for the equations.

    Shapes:
        - input: ``x [N, F]``, ``edge_index [2, E]`` of a disjoint union of ``G`` graphs,
          ``batch [N]`` graph ids, ``edge_label [E]`` int64 categories (when the config
          uses edge features).
        - output: logits ``[G, C]``; with ``return_pool_weights=True`` also ``beta [N]``
          (attention pooling only; ``None`` for the other readouts).
    """

    def __init__(self, config: GraphClassifierConfig) -> None:
        super().__init__()
        self.config = config
        c = config
        width = c.hidden_channels
        edge_dim = c.edge_embedding_dim if c.uses_edge_features else None
        self.edge_embedding = (
            nn.Embedding(c.num_edge_labels, c.edge_embedding_dim) if edge_dim else None
        )
        self.layers = nn.ModuleList(
            GATv2Conv(
                c.in_channels if layer == 0 else width,
                width // c.heads,
                heads=c.heads,
                dropout=c.attention_dropout,
                edge_dim=edge_dim,
                fill_value="mean",
                residual=c.residual,
            )
            for layer in range(c.num_layers)
        )
        self.pool = (
            GlobalAttentionPool(
                gate_nn=nn.Sequential(nn.Linear(width, width), nn.ReLU(), nn.Linear(width, 1))
            )
            if c.pooling == "attention"
            else None
        )
        self.mlp_hidden = nn.Linear(width, width)
        self.mlp_out = nn.Linear(width, c.num_classes)

    def reset_parameters(self) -> None:
        """Re-initialise every parameter."""
        for module in self.modules():
            if module is not self and hasattr(module, "reset_parameters"):
                module.reset_parameters()

    def forward(
        self,
        x: Tensor,
        edge_index: Tensor,
        batch: Tensor,
        num_graphs: int | None = None,
        edge_label: Tensor | None = None,
        return_pool_weights: bool = False,
    ) -> Tensor | tuple[Tensor, Tensor | None]:
        """Class logits of every graph; see the class docstring for shapes."""
        c = self.config
        edge_attr = None
        if self.edge_embedding is not None:
            edge_label = self._check_edge_label(edge_label, edge_index)
            edge_attr = self.edge_embedding(edge_label)  # e_ij, [E, D_e]
        if num_graphs is None:
            num_graphs = int(batch.max()) + 1 if batch.numel() > 0 else 0

        # h^(l) = ELU(GATv2(drop(h^(l-1)), e)).
        h = x  # [N, F]
        for layer in self.layers:
            h = nn.functional.dropout(h, p=c.dropout, training=self.training)
            h = nn.functional.elu(layer(h, edge_index, edge_attr=edge_attr))  # [N, width]

        # g = readout over each graph's nodes.
        beta = None
        if self.pool is not None:
            g, beta = self.pool(h, batch, num_graphs, return_weights=True)  # [G, width], [N]
        elif c.pooling == "mean":
            g = global_mean_pool(h, batch, num_graphs)  # [G, width]
        elif c.pooling == "sum":
            g = global_sum_pool(h, batch, num_graphs)
        else:
            g = global_max_pool(h, batch, num_graphs)

        # z = W2 drop(ELU(W1 g + b1)) + b2.
        z = nn.functional.elu(self.mlp_hidden(g))  # [G, width]
        z = nn.functional.dropout(z, p=c.dropout, training=self.training)
        logits = self.mlp_out(z)  # [G, C]
        if return_pool_weights:
            return logits, beta
        return logits

    def _check_edge_label(self, edge_label: Tensor | None, edge_index: Tensor) -> Tensor:
        num = self.config.num_edge_labels
        if edge_label is None:
            raise GraphInputError(
                f"edge_label is required: the model embeds {num} edge label categories "
                "(build it with edge_features=False to run without)"
            )
        if not isinstance(edge_label, Tensor) or edge_label.is_floating_point():
            kind = edge_label.dtype if isinstance(edge_label, Tensor) else type(edge_label)
            raise GraphInputError(f"edge_label must be an int64 tensor [E], got {kind}")
        if edge_label.dim() != 1 or edge_label.size(0) != edge_index.size(1):
            raise GraphInputError(
                f"edge_label must have shape [E] = ({edge_index.size(1)},), got "
                f"{tuple(edge_label.shape)}"
            )
        if edge_label.numel() and (int(edge_label.min()) < 0 or int(edge_label.max()) >= num):
            raise GraphInputError(
                f"edge_label holds values in [{int(edge_label.min())}, {int(edge_label.max())}]"
                f" but the model has num_edge_labels={num}; expected values in [0, {num})"
            )
        return edge_label.long()

    def __repr__(self) -> str:
        c = self.config
        return (
            f"{type(self).__name__}(layers={c.num_layers}, hidden={c.hidden_channels}, "
            f"heads={c.heads}, edge_features={c.uses_edge_features}, pooling={c.pooling!r})"
        )


def count_parameters(model: nn.Module) -> int:
    """Number of trainable scalars of ``model``."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
