r"""A deep GAT / GATv2 node classifier with residual connections and LayerNorm.

The architecture of the GATv2 paper's OGB runs (Brody, Alon, Yahav, "How Attentive are
Graph Attention Networks?", ICLR 2022, §4.3 and the authors' ogbn-arxiv code). For
:math:`L` layers, with :math:`\mathrm{Att}^{(\ell)}` a :class:`gatkit.nn.GATv2Conv` (or
:class:`gatkit.nn.GATConv`) whose :math:`K` heads of width :math:`d / K` are concatenated:

.. math::
    \mathbf{H}^{(0)} &= \mathbf{X}, \\
    \mathbf{U}^{(\ell)} &= \mathrm{ReLU}\big(\mathrm{Att}^{(\ell)}(\mathbf{H}^{(\ell-1)})\big)
        \,[+\, \mathbf{H}^{(\ell-1)} \text{ if residual and } \ell > 1], \\
    \mathbf{H}^{(\ell)} &= \mathrm{drop}_p\big(\mathrm{LayerNorm}(\mathbf{U}^{(\ell)})\big)
        \quad (1 \le \ell < L), \\
    \mathbf{Z} &= \frac{1}{K}\sum_{k=1}^{K} \mathrm{Att}^{(L)}_k(\mathbf{H}^{(L-1)}).

The identity residual needs equal widths, so the first layer (input width :math:`F \ne d`)
has none, as in the authors' code. :math:`\mathbf{Z}` are the class logits.
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
from gatkit.models.gat import OPERATORS
from gatkit.nn import GATConv, GATv2Conv

__all__ = ["ResidualGAT", "ResidualGATConfig"]


@dataclass
class ResidualGATConfig(ConfigRecord):
    """Settings of :class:`ResidualGAT`; defaults are the GATv2 paper's ogbn-arxiv recipe.

    Brody et al., ICLR 2022, Table 3 (OGB): 3 layers, hidden width 256, dropout 0.25,
    lr 0.01, 50 epochs, residual connections and LayerNorm; GATv2 with 1 or 8 heads
    (reported: 8 heads 71.87 ± 0.25 on ogbn-arxiv). The authors' code shares
    :math:`\\mathbf{W}_s = \\mathbf{W}_t` in GATv2 and uses no biases in the attention layers.

    Attributes:
        operator: ``"gatv2"`` or ``"gat"``.
        num_layers: number of attention layers :math:`L` (paper: 3).
        hidden_channels: width :math:`d` of each hidden layer, all heads together (256).
        heads: heads :math:`K` per layer; each has width ``hidden_channels // heads`` (1 or 8).
        dropout: dropout after each hidden layer's LayerNorm (0.25).
        residual: add the layer input to the output of hidden layers 2 … L-1 (yes).
        layer_norm: LayerNorm after each hidden layer (yes).
        share_weights: GATv2 only, one matrix for source and target (authors' code: yes).
        bias: biases inside the attention layers (authors' code: no).
        lr: Adam learning rate (0.01).
        weight_decay: L2 coefficient (0).
        epochs: training epochs (50).
    """

    operator: str = "gatv2"
    num_layers: int = 3
    hidden_channels: int = 256
    heads: int = 8
    dropout: float = 0.25
    residual: bool = True
    layer_norm: bool = True
    share_weights: bool = True
    bias: bool = False
    lr: float = 0.01
    weight_decay: float = 0.0
    epochs: int = 50

    def validate(self) -> None:
        """Raise ``ValueError`` naming the field, the expected and the actual value."""
        require_choice(self, "operator", OPERATORS)
        require_positive_ints(self, ("num_layers", "hidden_channels", "heads", "epochs"))
        if self.num_layers < 2:
            raise ValueError(f"num_layers must be >= 2, got {self.num_layers}")
        if self.hidden_channels % self.heads != 0:
            raise ValueError(
                f"hidden_channels must be divisible by heads, got hidden_channels="
                f"{self.hidden_channels} and heads={self.heads}"
            )
        require_probabilities(self, ("dropout",))
        require_optimiser(self)
        require_shared_weights_need_gatv2(self)

    @classmethod
    def arxiv_gatv2(cls, heads: int = 8, **overrides: Any) -> ResidualGATConfig:
        """The GATv2 paper's ogbn-arxiv recipe (heads 1 or 8), with optional overrides."""
        return cls(operator="gatv2", heads=heads, **overrides)


class ResidualGAT(nn.Module):
    """Deep node classifier: attention layers with residuals and LayerNorm (module docstring).

    Args:
        in_channels: input feature width :math:`F`.
        num_classes: number of classes :math:`C`.
        config: settings; ``ResidualGATConfig()`` (the arxiv recipe) if omitted.

    Shapes:
        - input: ``x`` ``[N, F]``, ``edge_index`` ``[2, E]`` (row 0 source, row 1 target).
        - output: logits ``[N, C]``.
    """

    kind = "residual-gat-node-classifier"

    def __init__(
        self, in_channels: int, num_classes: int, config: ResidualGATConfig | None = None
    ) -> None:
        super().__init__()
        config = config if config is not None else ResidualGATConfig()
        config.validate()
        for name, value in (("in_channels", in_channels), ("num_classes", num_classes)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        self.config = config
        self.in_channels = in_channels
        self.num_classes = num_classes
        self.num_layers = config.num_layers
        per_head = config.hidden_channels // config.heads
        self.layers = nn.ModuleList()
        self.norms = nn.ModuleList()
        width = in_channels
        for index in range(config.num_layers):
            last = index == config.num_layers - 1
            self.layers.append(
                self._make_layer(width, num_classes if last else per_head, concat=not last)
            )
            if not last:
                self.norms.append(
                    nn.LayerNorm(config.hidden_channels) if config.layer_norm else nn.Identity()
                )
            width = config.hidden_channels

    def _make_layer(self, in_channels: int, out_channels: int, concat: bool) -> nn.Module:
        c = self.config
        common = dict(heads=c.heads, concat=concat, bias=c.bias)
        if c.operator == "gatv2":
            return GATv2Conv(in_channels, out_channels, share_weights=c.share_weights, **common)
        return GATConv(in_channels, out_channels, **common)

    def reset_parameters(self) -> None:
        """Re-initialise every layer and norm."""
        for module in (*self.layers, *self.norms):
            if hasattr(module, "reset_parameters"):
                module.reset_parameters()

    def forward_layer(self, index: int, x_src: Tensor, num_dst: int, edge_index: Tensor) -> Tensor:
        """Layer ``index`` on a bipartite graph whose destinations are the first sources.

        ``x_src`` ``[N_src, F_in]``, ``edge_index`` ``[2, E]`` in local ids; returns
        ``[num_dst, d]`` (hidden layers) or ``[num_dst, C]`` (output layer).
        """
        x_dst = x_src[:num_dst]  # [N_dst, F_in] H^(l-1) of the destinations
        out = self.layers[index]((x_src, x_dst), edge_index)  # Att(H^(l-1))
        if index == self.num_layers - 1:
            return out  # Z, [N_dst, C]
        out = nn.functional.relu(out)  # [N_dst, d]
        if self.config.residual and index > 0:
            out = out + x_dst  # + H^(l-1)
        out = self.norms[index](out)  # LayerNorm
        return nn.functional.dropout(out, p=self.config.dropout, training=self.training)

    def forward(self, x: Tensor, edge_index: Tensor) -> Tensor:
        """Logits ``[N, C]`` on the whole graph; see the module docstring for the equations."""
        for index in range(self.num_layers):
            x = self.forward_layer(index, x, x.size(0), edge_index)
        return x

    def extra_repr(self) -> str:
        return f"operator={self.config.operator!r}"
