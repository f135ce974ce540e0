r"""DictionaryLookup: the benchmark of Brody, Alon and Yahav, "How Attentive are GATs?" (2022).

A problem of size :math:`k` is a bipartite graph of :math:`2k` nodes:

- query nodes :math:`0 \dots k-1` carry the tokens (key :math:`i`, value EMPTY), EMPTY :math:`= k`;
- key nodes :math:`k \dots 2k-1` carry (key :math:`i`, value :math:`\pi(i)`) for a random
  permutation :math:`\pi` of :math:`0 \dots k-1` (node :math:`k + i` holds key :math:`i`);
- edges go from every key node to every query node (:math:`k^2` directed edges, key → query);
- the target of query node :math:`i` is :math:`\pi(i)`, a :math:`k`-way class. A graph is solved
  when all :math:`k` queries are.

Examples are all :math:`k!` permutations when :math:`k! \le 32000`, otherwise 32000 random
permutations. The split is by *unseen combinations*: :math:`\lfloor 0.8^{1/k} k^2 \rfloor`
(query, value) pairs are allowed, and a graph is a training graph only if every pair
:math:`(i, \pi(i))` it contains is allowed; all others are test graphs. So every test graph
asks for at least one (query, value) pair never seen in training.

A batch of graphs is one disjoint union: graph :math:`g` owns nodes
:math:`2kg \dots 2k(g+1)-1`, laid out as above, and its :math:`k^2` edges, in graph order.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = [
    "MAX_EXAMPLES",
    "TRAIN_FRACTION",
    "DictionaryLookup",
    "LookupBatch",
    "make_batch",
    "make_dictionary_lookup",
    "num_allowed_pairs",
]

#: Most examples per problem (the authors' cap; :math:`8! = 40320` is the first size above it).
MAX_EXAMPLES = 32_000
#: Target share of training graphs in the unseen-combination split (the authors' value).
TRAIN_FRACTION = 0.8


def num_allowed_pairs(k: int, train_fraction: float = TRAIN_FRACTION) -> int:
    r"""Number of allowed (query, value) pairs: :math:`\lfloor f^{1/k} k^2 \rfloor`, :math:`f=0.8`.

    A uniformly random permutation then has all :math:`k` of its pairs allowed with
    probability about :math:`(f^{1/k})^k = f`, hence about a share :math:`f` of training graphs.
    """
    return int(train_fraction ** (1 / k) * k * k)


@dataclass(frozen=True)
class LookupBatch:
    """A disjoint union of DictionaryLookup graphs, ready for the model.

    Attributes:
        tokens: ``[B·2k, 2]`` long; column 0 the key id, column 1 the value id (EMPTY = k).
        edge_index: ``[2, B·k²]`` long; row 0 key (source) nodes, row 1 query (target) nodes.
        query_index: ``[B·k]`` long; the query nodes, graph by graph, query ``i`` at
            position ``g·k + i``.
        y: ``[B·k]`` long; the target :math:`\\pi(i)` of each query, aligned with
            ``query_index``.
        num_graphs: ``B``.
        k: problem size.
    """

    tokens: Tensor
    edge_index: Tensor
    query_index: Tensor
    y: Tensor
    num_graphs: int
    k: int

    @property
    def num_nodes(self) -> int:
        """``B·2k``."""
        return self.tokens.size(0)


def _check_size(k: object) -> int:
    if isinstance(k, bool) or not isinstance(k, int) or k < 2:
        raise ValueError(f"k (the dictionary size) must be an int >= 2, got {k!r}")
    return k


def make_batch(permutations: Tensor) -> LookupBatch:
    """Build the disjoint union of the graphs of ``permutations`` ``[B, k]`` (no Python loop).

    Row ``g`` of ``permutations`` is :math:`\\pi` of graph ``g``; its value ``π(i)`` is
    written on key node ``2kg + k + i`` and is the target of query node ``2kg + i``.
    """
    if not isinstance(permutations, Tensor) or permutations.dim() != 2:
        raise ValueError(
            "permutations must be a 2-D long tensor [num_graphs, k], got "
            f"{type(permutations).__name__}"
            + (f" of shape {tuple(permutations.shape)}" if isinstance(permutations, Tensor) else "")
        )
    B, k = permutations.shape
    _check_size(int(k))
    permutations = permutations.long()
    arange = torch.arange(k)
    empty = torch.full((k,), k, dtype=torch.long)
    # Per graph: query rows (i, EMPTY), then key rows (i, π(i)).
    keys = arange.repeat(2).expand(B, 2 * k)  # [B, 2k]
    values = torch.cat([empty.expand(B, k), permutations], dim=1)  # [B, 2k]
    tokens = torch.stack([keys, values], dim=-1).reshape(B * 2 * k, 2)  # [B·2k, 2]

    # One graph's k² edges, key node k + j → query node i, then shifted by 2k per graph.
    src = (k + arange).repeat(k)  # [k²]: j fastest
    dst = arange.repeat_interleave(k)  # [k²]: grouped by query i
    offsets = (torch.arange(B) * 2 * k).unsqueeze(1)  # [B, 1]
    edge_index = torch.stack(
        [(src + offsets).reshape(-1), (dst + offsets).reshape(-1)]
    )  # [2, B·k²]
    query_index = (arange + offsets).reshape(-1)  # [B·k]
    return LookupBatch(
        tokens=tokens,
        edge_index=edge_index,
        query_index=query_index,
        y=permutations.reshape(-1),
        num_graphs=int(B),
        k=int(k),
    )


@dataclass(frozen=True)
class DictionaryLookup:
    """All examples of one problem size, split by unseen combinations.

    Attributes:
        k: problem size.
        train: ``[N_train, k]`` long; one permutation :math:`\\pi` per training graph.
        test: ``[N_test, k]`` long; the test graphs.
        allowed: ``[k, k]`` bool; ``allowed[i, v]`` when the pair (query ``i``, value ``v``)
            may appear in training.
        seed: the seed that generated it.
    """

    k: int
    train: Tensor
    test: Tensor
    allowed: Tensor
    seed: int

    @property
    def num_classes(self) -> int:
        """``k`` classes, one per value."""
        return self.k

    @property
    def vocabulary(self) -> int:
        """``k + 1`` token ids: ``0 … k-1`` and EMPTY ``= k``."""
        return self.k + 1


def _all_permutations(k: int) -> Tensor:
    return torch.tensor(list(itertools.permutations(range(k))), dtype=torch.long)  # [k!, k]


def make_dictionary_lookup(
    k: int,
    seed: int = 0,
    max_examples: int = MAX_EXAMPLES,
    train_fraction: float = TRAIN_FRACTION,
) -> DictionaryLookup:
    r"""Generate the examples of size ``k`` and split them by unseen combinations.

    Every permutation when :math:`k! \le` ``max_examples``, else ``max_examples`` uniformly
    random permutations (repeats possible, as in the authors' code). Then
    :func:`num_allowed_pairs` of the :math:`k^2` (query, value) pairs are drawn without
    replacement, and a permutation is a training example iff all its pairs are drawn.
    Deterministic given ``seed``; the training examples are shuffled, the test examples keep
    generation order.

    Raises:
        ValueError: ``k < 2``, ``max_examples < 1`` or ``train_fraction`` outside ``(0, 1]``.
    """
    _check_size(k)
    if not isinstance(max_examples, int) or max_examples < 1:
        raise ValueError(f"max_examples must be a positive int, got {max_examples!r}")
    if not 0.0 < train_fraction <= 1.0:
        raise ValueError(f"train_fraction must lie in (0, 1], got {train_fraction!r}")
    generator = torch.Generator().manual_seed(seed)
    if math.factorial(k) <= max_examples:
        permutations = _all_permutations(k)  # [k!, k]
    else:
        noise = torch.rand(max_examples, k, generator=generator)
        permutations = noise.argsort(dim=1)  # [max_examples, k], uniform permutations

    chosen = torch.randperm(k * k, generator=generator)[: num_allowed_pairs(k, train_fraction)]
    allowed = torch.zeros(k * k, dtype=torch.bool)
    allowed[chosen] = True
    allowed = allowed.view(k, k)  # [query i, value v]

    pair_allowed = allowed[torch.arange(k), permutations]  # [N, k]: allowed[i, π(i)]
    is_train = pair_allowed.all(dim=1)  # [N]
    train = permutations[is_train]
    train = train[torch.randperm(train.size(0), generator=generator)]
    test = permutations[~is_train]
    return DictionaryLookup(k=k, train=train, test=test, allowed=allowed, seed=seed)
