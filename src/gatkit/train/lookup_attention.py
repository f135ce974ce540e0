r"""Static versus dynamic attention, measured on trained DictionaryLookup models.

Brody et al. (2022, Def. 3.1) call a family of scoring functions *static* when for every
function there is a key :math:`j_{max}` ranked highest for every query :math:`i`. GAT's score
:math:`e_{ij} = \mathrm{LeakyReLU}(\mathbf{a}_t^\top\mathbf{W}\mathbf{h}_i +
\mathbf{a}_s^\top\mathbf{W}\mathbf{h}_j)` is monotone in the key term for every query, so it is
static; GATv2's :math:`e_{ij} = \mathbf{a}^\top\mathrm{LeakyReLU}(\mathbf{W}[\mathbf{h}_i \Vert
\mathbf{h}_j])` is not. On DictionaryLookup the right key for query :math:`i` is key node
:math:`k + i`, a different one for each query, so a static layer cannot attend to it.

:func:`lookup_attention_report` measures, per head (and for the mean over heads), over the
key → query edges only (self-loops left out):

- ``correct_key``: the fraction of queries whose highest-attention key is the correct key;
- ``correct_key_lowest``: the fraction whose *lowest*-attention key is the correct key. A
  trained GATv2 may single the correct key out this way instead: it then reads
  :math:`\pi(i)` from the other keys' values (a permutation leaves exactly one value out).
  Either way the chosen key follows the query; a static layer gets both right for exactly
  one query in :math:`k`;
- ``correct_key_rank``: the mean rank of the correct key among the :math:`k` keys, scaled to
  :math:`[0, 1]` (0: highest attention, 1: lowest). A static layer ranks the keys the same
  way for every query, so the correct keys of a graph take every rank once: mean 0.5.
  Values near 0 or 1 mean the correct key is singled out (e.g. suppressed, but for one
  always-ignored key, which ``correct_key_lowest`` misses);
- ``same_key``: the fraction of graphs in which every query has the same highest-attention
  key (1.0 for static attention, whatever the weights).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from gatkit.data.dictionary_lookup import make_batch
from gatkit.models.lookup import LookupModel
from gatkit.nn import record_attention

__all__ = ["LookupAttentionReport", "key_attention", "lookup_attention_report"]


@dataclass(frozen=True)
class LookupAttentionReport:
    """Argmax-key statistics of one model; tuples hold one value per head, then the mean."""

    model: str
    heads: int
    k: int
    num_graphs: int
    correct_key: tuple[float, ...]
    correct_key_lowest: tuple[float, ...]
    correct_key_rank: tuple[float, ...]
    same_key: tuple[float, ...]

    def as_dict(self) -> dict:
        """JSON-ready: per-head lists plus the head-mean values under ``*_mean_heads``."""
        return {
            "model": self.model,
            "heads": self.heads,
            "k": self.k,
            "num_graphs": self.num_graphs,
            "correct_key_per_head": list(self.correct_key[:-1]),
            "correct_key_lowest_per_head": list(self.correct_key_lowest[:-1]),
            "correct_key_rank_per_head": list(self.correct_key_rank[:-1]),
            "same_key_per_head": list(self.same_key[:-1]),
            "correct_key_mean_heads": self.correct_key[-1],
            "correct_key_lowest_mean_heads": self.correct_key_lowest[-1],
            "correct_key_rank_mean_heads": self.correct_key_rank[-1],
            "same_key_mean_heads": self.same_key[-1],
        }


@torch.no_grad()
def key_attention(model: LookupModel, permutations: Tensor) -> Tensor:
    r"""Attention of each query on each key: ``[B, k (query i), k (key j), heads]``.

    Entry ``[g, i, j, h]`` is :math:`\alpha_{ij}` of head ``h`` from key node ``k + j`` to
    query node ``i`` of graph ``g``. Self-loops (GAT) are left out, so a row sums to one only
    for layers without them.
    """
    batch = make_batch(permutations)
    k, B = batch.k, batch.num_graphs
    was_training = model.training
    model.eval()
    try:
        with record_attention(model) as recorded:
            model(batch.tokens, batch.edge_index, batch.query_index)
    finally:
        model.train(was_training)
    edge_index, alpha = next(iter(recorded.values()))  # [2, E'], [E', H]
    src, dst = edge_index
    local_src, local_dst = src % (2 * k), dst % (2 * k)
    keep = (local_src >= k) & (local_dst < k) & (src // (2 * k) == dst // (2 * k))
    graph = dst[keep] // (2 * k)
    dense = alpha.new_zeros(B, k, k, alpha.size(1))  # [B, k, k, H]
    dense[graph, local_dst[keep], local_src[keep] - k] = alpha[keep]
    return dense


def lookup_attention_report(
    model: LookupModel, permutations: Tensor, batch_size: int = 512
) -> LookupAttentionReport:
    """Fractions of queries attending most (least) to the correct key; graphs with one argmax key.

    ``permutations`` ``[N, k]`` are the graphs to measure on (e.g. the test split).
    """
    n, k = permutations.shape
    if n == 0:
        raise ValueError("permutations must hold at least one graph, got 0 rows")
    heads = model.config.heads
    correct = torch.zeros(heads + 1, dtype=torch.float64)
    lowest = torch.zeros(heads + 1, dtype=torch.float64)
    rank = torch.zeros(heads + 1, dtype=torch.float64)
    same = torch.zeros(heads + 1, dtype=torch.float64)
    for start in range(0, n, batch_size):
        dense = key_attention(model, permutations[start : start + batch_size])  # [B, k, k, H]
        dense = torch.cat([dense, dense.mean(dim=-1, keepdim=True)], dim=-1)  # [B, k, k, H+1]
        argmax_key = dense.argmax(dim=2)  # [B, k, H+1]
        argmin_key = dense.argmin(dim=2)  # [B, k, H+1]
        target = torch.arange(k).view(1, k, 1)
        correct += (argmax_key == target).double().sum(dim=(0, 1))
        lowest += (argmin_key == target).double().sum(dim=(0, 1))
        diagonal = dense.diagonal(dim1=1, dim2=2).transpose(1, 2)  # [B, k, H+1]: α_{i, k+i}
        above = (dense > diagonal.unsqueeze(2)).sum(dim=2)  # [B, k, H+1]: keys ranked higher
        rank += above.double().sum(dim=(0, 1)) / max(k - 1, 1)
        same += (argmax_key == argmax_key[:, :1]).all(dim=1).double().sum(dim=0)
    return LookupAttentionReport(
        model=model.config.model,
        heads=heads,
        k=k,
        num_graphs=n,
        correct_key=tuple(float(v) for v in correct / (n * k)),
        correct_key_lowest=tuple(float(v) for v in lowest / (n * k)),
        correct_key_rank=tuple(float(v) for v in rank / (n * k)),
        same_key=tuple(float(v) for v in same / n),
    )
