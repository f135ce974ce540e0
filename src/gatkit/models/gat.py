r"""A GAT / GATv2 node classifier and its configuration (Veličković et al., ICLR 2018).

The model is the paper's transductive architecture. For :math:`L` layers,

.. math::
    \mathbf{H}^{(0)} = \mathbf{X}, \qquad
    \mathbf{H}^{(\ell)} = \mathrm{ELU}\Big(\mathbin\Vert_{k=1}^{K}
        \mathrm{Att}^{(\ell)}_k\big(\mathrm{drop}_p(\mathbf{H}^{(\ell-1)})\big)\Big)
        \quad (1 \le \ell < L), \qquad
    \mathbf{Z} = \frac{1}{K_{\text{out}}} \sum_{k=1}^{K_{\text{out}}}
        \mathrm{Att}^{(L)}_k\big(\mathrm{drop}_p(\mathbf{H}^{(L-1)})\big),

where :math:`\mathrm{Att}_k` is one head of :class:`gatkit.nn.GATConv` (``operator="gat"``)
or :class:`gatkit.nn.GATv2Conv` (``operator="gatv2"``, Brody et al., ICLR 2022), with
dropout :math:`p` also applied to the normalised attention coefficients :math:`\alpha_{ij}`.
With ``dropout_placement="per_head"`` (the default, as the authors' code) head :math:`k`
draws its own mask :math:`\mathrm{drop}^k_p` of the input and the messages
:math:`\mathbf{W}^k\mathbf{h}_j` are dropped once more before the weighted sum;
``"shared"`` draws one input mask for all heads, as written above.
:math:`\mathbf{Z}` are the class logits; the softmax lives in the loss.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from torch import Tensor, nn

from gatkit.models.config import (
    ConfigRecord,
    require_choice,
    require_optimiser,
    require_positive_ints,
    require_probabilities,
    require_shared_weights_need_gatv2,
)
from gatkit.nn import GATConv, GATv2Conv
from gatkit.nn.dropout import FeatureDropout
from gatkit.nn.recomputed_dropout import lean_dropout

OPERATORS = ("gat", "gatv2")
DROPOUT_PLACEMENTS = ("per_head", "shared")
STOPPING_RULES = ("gat", "min-val-loss")  # gatkit.train.early_stopping.make_stopper

__all__ = ["DROPOUT_PLACEMENTS", "GAT", "GATConfig", "FeatureDropout", "OPERATORS"]


@dataclass
class GATConfig(ConfigRecord):
    """Architecture and optimisation settings of a GAT node classifier.

    Defaults are the transductive settings of Veličković et al., "Graph Attention
    Networks", ICLR 2018, §3.3 (Cora and Citeseer); :meth:`for_dataset` gives the Pubmed
    changes. The same settings are used for GATv2 (Brody et al., ICLR 2022), which swaps
    only the attention operator.

    Attributes:
        operator: ``"gat"`` (static attention) or ``"gatv2"`` (dynamic attention).
        num_layers: number of attention layers :math:`L` (paper: 2).
        hidden_channels: features per head :math:`F'` in the hidden layers (paper: 8).
        heads: heads :math:`K` per hidden layer, concatenated (paper: 8).
        out_heads: heads of the output layer, averaged (paper: 1; Pubmed: 8).
        dropout: dropout probability on the input of every layer (paper: 0.6).
        dropout_placement: ``"per_head"`` (the GAT authors' code: every head draws its own
            input mask, and the projected features :math:`\\mathbf{W}\\mathbf{h}_j` are
            dropped again, with the same :math:`p`, before the weighted sum; the scores
            read them undropped) or ``"shared"`` (one mask on the layer input, as PyG's and
            DGL's examples).
        attention_dropout: dropout on the normalised coefficients :math:`\\alpha_{ij}`
            (paper: 0.6).
        negative_slope: LeakyReLU slope in the attention score (paper: 0.2).
        add_self_loops: every node attends to itself (paper: yes).
        share_weights: GATv2 only, one matrix for source and target (GATv2 paper's default
            for node classification: no).
        lr: Adam learning rate (paper: 0.005; Pubmed: 0.01).
        weight_decay: L2 coefficient :math:`\\lambda`, applied to every parameter as the
            gradient term :math:`\\lambda\\theta` (the GAT code adds
            :math:`\\lambda \\sum \\lVert\\theta\\rVert^2 / 2` to the loss; paper: 5e-4,
            Pubmed 1e-3).
        patience: epochs without improvement before early stopping (paper: 100).
        stopping: ``"gat"`` (the authors' rule: patience on validation loss or accuracy,
            :class:`gatkit.train.early_stopping.GATEarlyStopping`) or ``"min-val-loss"``
            (PyG's citation benchmark: the epoch of least validation loss is kept, training
            runs at least half of ``max_epochs``;
            :class:`gatkit.train.early_stopping.MinValidationLossSelection`).
        max_epochs: hard cap on training epochs (GAT code: 100000, i.e. early stopping
            decides).
    """

    operator: str = "gat"
    num_layers: int = 2
    hidden_channels: int = 8
    heads: int = 8
    out_heads: int = 1
    dropout: float = 0.6
    dropout_placement: str = "per_head"
    attention_dropout: float = 0.6
    negative_slope: float = 0.2
    add_self_loops: bool = True
    share_weights: bool = False
    lr: float = 0.005
    weight_decay: float = 5e-4
    patience: int = 100
    stopping: str = "gat"
    max_epochs: int = 100_000

    def validate(self) -> None:
        """Raise ``ValueError`` naming the field, the expected and the actual value."""
        require_choice(self, "operator", OPERATORS)
        require_choice(self, "dropout_placement", DROPOUT_PLACEMENTS)
        require_choice(self, "stopping", STOPPING_RULES)
        require_positive_ints(
            self, ("num_layers", "hidden_channels", "heads", "out_heads", "max_epochs", "patience")
        )
        require_probabilities(self, ("dropout", "attention_dropout"))
        require_optimiser(self)
        require_shared_weights_need_gatv2(self)

    @classmethod
    def for_dataset(cls, name: str, operator: str = "gat", **overrides: Any) -> GATConfig:
        """The paper's settings for a Planetoid dataset, with optional field overrides.

        Cora and Citeseer use the defaults. Pubmed (GAT paper §3.3): 8 output heads
        averaged, lr 0.01, L2 1e-3. Unknown names get the defaults.
        """
        preset: dict[str, Any] = {"operator": operator}
        if name.lower() == "pubmed":
            preset.update(out_heads=8, lr=0.01, weight_decay=1e-3)
        preset.update(overrides)
        return cls(**preset)


class GAT(nn.Module):
    """Node classifier: ``num_layers`` GAT/GATv2 layers, ELU between them.

    Args:
        in_channels: input feature width :math:`F`.
        num_classes: number of classes :math:`C` (width of the logits).
        config: architecture settings; ``GATConfig()`` (the paper's Cora setup) if omitted.

    Shapes:
        - input: ``x`` ``[N, F]``, ``edge_index`` ``[2, E]`` (row 0 source, row 1 target).
        - output: logits ``[N, C]``.
    """

    kind = "gat-node-classifier"

    def __init__(self, in_channels: int, num_classes: int, config: GATConfig | None = None):
        super().__init__()
        config = config if config is not None else GATConfig()
        config.validate()
        for name, value in (("in_channels", in_channels), ("num_classes", num_classes)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        self.config = config
        self.in_channels = in_channels
        self.num_classes = num_classes
        self.shared_dropout = config.dropout_placement == "shared"
        self.input_dropout = FeatureDropout(config.dropout if self.shared_dropout else 0.0)
        self.layers = nn.ModuleList()
        width = in_channels
        for index in range(config.num_layers):
            last = index == config.num_layers - 1
            self.layers.append(
                self._make_layer(
                    width,
                    num_classes if last else config.hidden_channels,
                    heads=config.out_heads if last else config.heads,
                    concat=not last,
                )
            )
            width = config.hidden_channels * config.heads

    def _make_layer(self, in_channels: int, out_channels: int, heads: int, concat: bool):
        c = self.config
        per_head = 0.0 if self.shared_dropout else c.dropout
        common = dict(
            heads=heads,
            concat=concat,
            negative_slope=c.negative_slope,
            dropout=c.attention_dropout,
            add_self_loops=c.add_self_loops,
            feature_dropout=per_head,
            message_dropout=per_head,
        )
        if c.operator == "gatv2":
            return GATv2Conv(in_channels, out_channels, share_weights=c.share_weights, **common)
        return GATConv(in_channels, out_channels, **common)

    def reset_parameters(self) -> None:
        """Re-initialise every layer."""
        for layer in self.layers:
            layer.reset_parameters()

    def forward(self, x: Tensor, edge_index: Tensor) -> Tensor:
        """Logits ``[N, C]``; see the module docstring for the equations."""
        p = self.config.dropout if self.shared_dropout else 0.0
        last = len(self.layers) - 1
        # drop_p(H^(0)) here when shared (sparse-aware: bag-of-words features); per head
        # inside the layers otherwise.
        x = self.input_dropout(x)  # [N, F]
        for index, layer in enumerate(self.layers):
            x = layer(x, edge_index)  # [N, K F'] hidden, [N, C] output
            if index < last:
                # ELU, then the next layer's shared input dropout, as one step that keeps
                # the layer output and a one-byte mask for the backward pass.
                x = lean_dropout(x, p, self.training, activation="elu")  # [N, K F']
        return x

    def extra_repr(self) -> str:
        return f"operator={self.config.operator!r}"
