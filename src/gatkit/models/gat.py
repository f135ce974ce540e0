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
:math:`\mathbf{Z}` are the class logits; the softmax lives in the loss.
"""

from __future__ import annotations

import dataclasses
import weakref
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from gatkit.nn import GATConv, GATv2Conv

OPERATORS = ("gat", "gatv2")


class FeatureDropout(nn.Module):
    r"""Dropout that draws masks only for the non-zero entries of a mostly-zero input.

    :math:`\mathrm{drop}_p(x)_{ij} = x_{ij} m_{ij} / (1 - p)` with
    :math:`m_{ij} \sim \mathrm{Bernoulli}(1 - p)`. A zero entry stays zero whatever
    :math:`m_{ij}`, so drawing masks for the non-zeros only gives the same distribution as
    ``nn.functional.dropout`` at a fraction of the cost on bag-of-words features (Cora: 1.3 %
    non-zero). The non-zero positions of the last input are cached (the features of a
    full-batch run never change); inputs with more than a quarter non-zeros use the dense
    dropout.
    """

    def __init__(self, p: float) -> None:
        super().__init__()
        self.p = p
        self._cache: tuple[weakref.ref, int, Tensor, Tensor] | None = None

    def _nonzero(self, x: Tensor) -> tuple[Tensor, Tensor]:
        cache = self._cache
        if cache is not None and cache[0]() is x and cache[1] == x._version:
            return cache[2], cache[3]
        rows, cols = x.nonzero(as_tuple=True)  # [nnz], [nnz]
        self._cache = (weakref.ref(x), x._version, rows, cols)
        return rows, cols

    def forward(self, x: Tensor) -> Tensor:
        if not self.training or self.p == 0.0:
            return x
        rows, cols = self._nonzero(x)
        if rows.numel() * 4 > x.numel():
            return nn.functional.dropout(x, p=self.p, training=True)
        values = nn.functional.dropout(x[rows, cols], p=self.p, training=True)  # [nnz]
        out = torch.zeros_like(x)
        out[rows, cols] = values
        return out

    def extra_repr(self) -> str:
        return f"p={self.p}"


@dataclass
class GATConfig:
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
        max_epochs: hard cap on training epochs (GAT code: 100000, i.e. early stopping
            decides).
    """

    operator: str = "gat"
    num_layers: int = 2
    hidden_channels: int = 8
    heads: int = 8
    out_heads: int = 1
    dropout: float = 0.6
    attention_dropout: float = 0.6
    negative_slope: float = 0.2
    add_self_loops: bool = True
    share_weights: bool = False
    lr: float = 0.005
    weight_decay: float = 5e-4
    patience: int = 100
    max_epochs: int = 100_000

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise ``ValueError`` naming the field, the expected and the actual value."""
        if self.operator not in OPERATORS:
            raise ValueError(f"operator must be one of {OPERATORS}, got {self.operator!r}")
        for name in ("num_layers", "hidden_channels", "heads", "out_heads", "max_epochs"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        if not isinstance(self.patience, int) or self.patience < 1:
            raise ValueError(f"patience must be a positive int, got {self.patience!r}")
        for name in ("dropout", "attention_dropout"):
            value = getattr(self, name)
            if not 0.0 <= value < 1.0:
                raise ValueError(f"{name} must lie in [0, 1), got {value!r}")
        if self.lr <= 0:
            raise ValueError(f"lr must be > 0, got {self.lr!r}")
        if self.weight_decay < 0:
            raise ValueError(f"weight_decay must be >= 0, got {self.weight_decay!r}")
        if self.share_weights and self.operator != "gatv2":
            raise ValueError("share_weights=True needs operator='gatv2', got operator='gat'")

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

    def to_dict(self) -> dict[str, Any]:
        """Plain-dict form (for checkpoints and JSON output)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> GATConfig:
        """Inverse of :meth:`to_dict`; unknown keys are refused with their names."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown GATConfig fields {unknown}; expected a subset of {known}")
        return cls(**values)


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
        self.input_dropout = FeatureDropout(config.dropout)
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
        common = dict(
            heads=heads,
            concat=concat,
            negative_slope=c.negative_slope,
            dropout=c.attention_dropout,
            add_self_loops=c.add_self_loops,
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
        p = self.config.dropout
        for index, layer in enumerate(self.layers):
            # drop_p(H^(l-1)); the raw features are usually sparse bag-of-words.
            if index == 0:
                x = self.input_dropout(x)  # [N, F]
            else:
                x = nn.functional.dropout(x, p=p, training=self.training)  # [N, K F']
            x = layer(x, edge_index)  # [N, K F'] hidden, [N, C] output
            if index < len(self.layers) - 1:
                x = nn.functional.elu(x)
        return x

    def extra_repr(self) -> str:
        return f"operator={self.config.operator!r}"
