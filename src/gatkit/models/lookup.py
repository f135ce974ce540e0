r"""The DictionaryLookup model of Brody, Alon and Yahav, "How Attentive are GATs?" (ICLR 2022).

.. math::
    \mathbf{h}_v = \mathrm{ReLU}\left(\mathbf{E}_{key}[\mathrm{key}_v]
        + \mathbf{E}_{val}[\mathrm{val}_v]\right) \in \mathbb{R}^{d},
    \qquad
    \mathbf{h}_i' = \mathbin\Vert_{k=1}^{K} \sum_{j \in \mathcal{N}(i)} \alpha_{ij}^{k}
        \mathbf{W}^{k} \mathbf{h}_j \in \mathbb{R}^{d},
    \qquad
    \hat{\mathbf{y}}_i = \mathbf{W}_{out} \mathbf{h}_i' \in \mathbb{R}^{k}

for every query node :math:`i`, with one GAT or GATv2 layer of :math:`K` heads of width
:math:`d/K` (:math:`d = 128`) and a bias-free classifier :math:`\mathbf{W}_{out}`.

Layer settings as in the authors' runs: GAT adds self-loops (each query also attends to
itself) and keeps PyG's output bias; GATv2 shares :math:`\mathbf{W}_s = \mathbf{W}_t`, has no
bias and no self-loops. The authors' forward also applied ``F.dropout(x)`` (p = 0.5, active in
evaluation too) after the attention layer; that is an artifact of their code, not the
method, and is left out here.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Literal

import torch
from torch import Tensor, nn

from gatkit.errors import GraphInputError
from gatkit.models.config import require_choice, require_positive_ints
from gatkit.nn import GATConv, GATv2Conv

__all__ = ["LOOKUP_MODELS", "LookupModel", "LookupModelConfig"]

#: The attention layers the lookup model can use.
LOOKUP_MODELS = ("gat", "gatv2")


@dataclass(frozen=True)
class LookupModelConfig:
    """Configuration of :class:`LookupModel` (defaults from Brody et al., 2022, §4.1).

    Attributes:
        k: dictionary size; vocabulary ``k + 1`` (EMPTY ``= k``) and ``k`` classes.
        model: ``"gat"`` or ``"gatv2"``.
        heads: number of heads :math:`K`; must divide ``hidden``.
        hidden: width :math:`d` of the embeddings and of the attention output.
    """

    k: int
    model: Literal["gat", "gatv2"] = "gatv2"
    heads: int = 1
    hidden: int = 128

    def __post_init__(self) -> None:
        if isinstance(self.k, bool) or not isinstance(self.k, int) or self.k < 2:
            raise ValueError(f"k must be an int >= 2, got {self.k!r}")
        require_choice(self, "model", LOOKUP_MODELS)
        require_positive_ints(self, ("heads",))
        if not isinstance(self.hidden, int) or self.hidden < 1 or self.hidden % self.heads:
            raise ValueError(
                f"hidden must be a positive multiple of heads={self.heads}, got {self.hidden!r}"
            )

    def to_dict(self) -> dict:
        """Plain dict, for checkpoints and JSON."""
        return asdict(self)


class LookupModel(nn.Module):
    """Embeddings, one attention layer, a bias-free classifier on the query nodes.

    Shapes:
        - input: ``tokens`` ``[N, 2]`` long (key id, value id); ``edge_index`` ``[2, E]``
          (key → query); ``query_index`` ``[Q]`` long.
        - output: logits ``[Q, k]``.
    """

    def __init__(self, config: LookupModelConfig) -> None:
        super().__init__()
        self.config = config
        d, K = config.hidden, config.heads
        vocabulary = config.k + 1
        self.key_embedding = nn.Embedding(vocabulary, d)  # E_key
        self.value_embedding = nn.Embedding(vocabulary, d)  # E_val
        if config.model == "gat":
            self.attention: GATConv | GATv2Conv = GATConv(d, d // K, heads=K)
        else:
            self.attention = GATv2Conv(
                d, d // K, heads=K, share_weights=True, bias=False, add_self_loops=False
            )
        self.classifier = nn.Linear(d, config.k, bias=False)  # W_out

    def forward(self, tokens: Tensor, edge_index: Tensor, query_index: Tensor) -> Tensor:
        """Logits of the query nodes; see the module docstring for the equations.

        Raises:
            GraphInputError: ``tokens`` is not a ``[N, 2]`` integer tensor of ids in
                ``[0, k]``, or ``query_index`` is not a 1-D integer tensor.
        """
        self._check_inputs(tokens, query_index)
        # h_v = ReLU(E_key[key_v] + E_val[val_v]).
        h = self.key_embedding(tokens[:, 0]) + self.value_embedding(tokens[:, 1])  # [N, d]
        h = h.relu()
        # h_i' = ||_k Σ_j α_ij^k W^k h_j.
        h = self.attention(h, edge_index)  # [N, d]
        # ŷ_i = W_out h_i' on the query nodes only.
        return self.classifier(h.index_select(0, query_index))  # [Q, k]

    def _check_inputs(self, tokens: Tensor, query_index: Tensor) -> None:
        k = self.config.k
        if not isinstance(tokens, Tensor) or tokens.dim() != 2 or tokens.size(1) != 2:
            shape = tuple(tokens.shape) if isinstance(tokens, Tensor) else type(tokens).__name__
            raise GraphInputError(f"tokens must have shape [num_nodes, 2], got {shape}")
        if tokens.is_floating_point() or tokens.dtype == torch.bool:
            raise GraphInputError(f"tokens must be an integer tensor, got {tokens.dtype}")
        if tokens.numel() and (int(tokens.min()) < 0 or int(tokens.max()) > k):
            raise GraphInputError(
                f"tokens must hold ids in [0, {k}] (k={k}, EMPTY={k}), got values in "
                f"[{int(tokens.min())}, {int(tokens.max())}]"
            )
        if not isinstance(query_index, Tensor) or query_index.dim() != 1:
            raise GraphInputError("query_index must be a 1-D tensor of query node ids")

    def extra_repr(self) -> str:
        c = self.config
        return f"k={c.k}, model={c.model!r}, heads={c.heads}, hidden={c.hidden}"
