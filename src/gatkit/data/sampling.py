r"""Neighbour sampling into bipartite blocks, for mini-batch training on large graphs.

A model of :math:`L` attention layers computes the output of a seed node :math:`v` from its
:math:`L`-hop in-neighbourhood. Sampling (Hamilton et al., "Inductive Representation
Learning on Large Graphs", NeurIPS 2017) caps that neighbourhood: walking from the seeds
towards the input, each destination node :math:`i` keeps at most :math:`k_\ell` of its
in-edges :math:`j \to i`, drawn uniformly **without replacement** (all of them when it has
fewer). Layer :math:`\ell` then runs on a :class:`Block`: a bipartite graph from the
block's source nodes to its destination nodes, in local ids.

Conventions that make a block a valid input of :class:`gatkit.nn.GATConv` and
:class:`gatkit.nn.GATv2Conv` (bipartite forward ``layer((x_src, x_dst), edge_index)``):

- the destination nodes are the **first** ``num_dst`` source nodes, so ``x_dst =
  x_src[:num_dst]`` and the self-loop ``i -> i`` that the layer adds for
  ``i < min(N_src, N_dst)`` joins each destination with itself;
- ``edge_index[0]`` indexes the block's sources, ``edge_index[1]`` its destinations, and the
  edges are grouped by destination;
- the destinations of block :math:`\ell + 1` are all the sources of block :math:`\ell`
  (blocks are listed from the input layer to the output layer), and the last block's
  destinations are the seeds, in the order given.

Sampling is vectorised over all destination nodes of a layer: nodes with at most
:math:`k` in-edges keep them all; for the others, :math:`k` distinct positions out of
:math:`d_i` are drawn with Floyd's algorithm, run for all such nodes at once (a loop over
the :math:`k` draws, never over nodes; cost :math:`O(B k^2)` for :math:`B` nodes, whatever
their degrees). Randomness comes only from a ``torch.Generator``, so a seed fixes every
sample.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from gatkit.errors import GraphInputError
from gatkit.validation import check_edge_index

__all__ = [
    "Block",
    "InNeighbourCSR",
    "MiniBatch",
    "NeighborLoader",
    "NeighborSampler",
    "check_fanouts",
]


@dataclass(frozen=True)
class Block:
    """One layer's bipartite graph from ``N_src`` source to ``num_dst`` destination nodes.

    Attributes:
        src_nodes: ``[N_src]`` global ids of the source nodes; the first ``num_dst`` are the
            destination nodes.
        num_dst: number of destination nodes ``N_dst``.
        edge_index: ``[2, E_b]`` int64 local edge list, row 0 in ``[0, N_src)`` (sources),
            row 1 in ``[0, N_dst)`` (destinations), grouped by destination.
        edge_ids: ``[E_b]`` column of each edge in the graph's ``edge_index`` (to gather
            edge features).
    """

    src_nodes: Tensor
    num_dst: int
    edge_index: Tensor
    edge_ids: Tensor

    @property
    def num_src(self) -> int:
        """Number of source nodes ``N_src`` (``>= num_dst``)."""
        return int(self.src_nodes.numel())

    @property
    def num_edges(self) -> int:
        """Number of edges ``E_b``."""
        return int(self.edge_index.size(1))

    @property
    def dst_nodes(self) -> Tensor:
        """``[N_dst]`` global ids of the destination nodes."""
        return self.src_nodes[: self.num_dst]

    def to(self, device: torch.device | str) -> Block:
        """The same block with its tensors on ``device``."""
        return Block(
            self.src_nodes.to(device), self.num_dst, self.edge_index.to(device),
            self.edge_ids.to(device),
        )  # fmt: skip

    def __repr__(self) -> str:
        return f"Block(num_src={self.num_src}, num_dst={self.num_dst}, num_edges={self.num_edges})"


@dataclass(frozen=True)
class MiniBatch:
    """The seeds of one mini-batch and the blocks that compute their outputs.

    Attributes:
        seeds: ``[B]`` global ids of the nodes whose outputs (and loss) the batch computes.
        blocks: one :class:`Block` per layer, input layer first; ``blocks[-1].dst_nodes``
            equals ``seeds``.
    """

    seeds: Tensor
    blocks: list[Block]

    @property
    def input_nodes(self) -> Tensor:
        """``[N_0]`` global ids of the nodes whose input features the batch reads."""
        return self.blocks[0].src_nodes

    def to(self, device: torch.device | str) -> MiniBatch:
        """The same batch with its tensors on ``device``."""
        return MiniBatch(self.seeds.to(device), [block.to(device) for block in self.blocks])


class InNeighbourCSR:
    """In-edges of every node, sorted by destination (compressed sparse rows).

    The in-edges ``j -> i`` of node ``i`` are the sorted positions ``rowptr[i] :
    rowptr[i + 1]``; ``col`` holds their sources ``j`` and ``edge_ids`` their columns in the
    original ``edge_index``. Within a node, edges keep their original order.

    Args:
        edge_index: ``[2, E]`` edge list, row 0 sources, row 1 destinations.
        num_nodes: number of nodes ``N``.
    """

    def __init__(self, edge_index: Tensor, num_nodes: int) -> None:
        if not isinstance(num_nodes, int) or isinstance(num_nodes, bool) or num_nodes < 0:
            raise GraphInputError(f"num_nodes must be a non-negative int, got {num_nodes!r}")
        edge_index = check_edge_index(edge_index, num_nodes, num_nodes)
        src, dst = edge_index[0], edge_index[1]
        dst_sorted, perm = torch.sort(dst, stable=True)  # [E], [E]
        counts = torch.bincount(dst_sorted, minlength=num_nodes)  # [N] in-degrees
        self.rowptr = torch.zeros(num_nodes + 1, dtype=torch.long, device=dst.device)  # [N+1]
        torch.cumsum(counts, 0, out=self.rowptr[1:])
        self.col = src.index_select(0, perm)  # [E] source of each sorted edge
        self.edge_ids = perm  # [E] original column of each sorted edge
        self.num_nodes = num_nodes

    @property
    def num_edges(self) -> int:
        return int(self.col.numel())

    def in_degree(self, nodes: Tensor) -> Tensor:
        """``[B]`` number of in-edges of each node in ``nodes`` ``[B]``."""
        return self.rowptr[nodes + 1] - self.rowptr[nodes]


def check_fanouts(fanouts: object) -> list[int]:
    """Return ``fanouts`` as a list of ints after checking each is positive or ``-1`` (all)."""
    if isinstance(fanouts, (str, bytes)) or not isinstance(fanouts, Sequence):
        raise ValueError(
            f"fanouts must be a sequence of ints, one per layer (e.g. [15, 10]), got {fanouts!r}"
        )
    values = list(fanouts)
    if not values:
        raise ValueError("fanouts must name at least one layer, got an empty sequence")
    for position, value in enumerate(values):
        if not isinstance(value, int) or isinstance(value, bool) or (value < 1 and value != -1):
            raise ValueError(
                f"fanouts[{position}] must be a positive int or -1 (every neighbour), got {value!r}"
            )
    return values


def _floyd_offsets(degree: Tensor, k: int, generator: torch.Generator | None) -> Tensor:
    """``[B, k]`` distinct offsets in ``[0, degree_b)`` per row, uniform over k-subsets.

    Floyd's algorithm, vectorised over rows: for ``j = d - k, ..., d - 1`` draw ``t`` uniform
    in ``[0, j]``; keep ``t`` unless it was drawn before, else keep ``j``. Needs
    ``degree > k`` (or ``== k``) on every row.
    """
    rows = degree.numel()
    chosen = torch.empty(rows, k, dtype=torch.long, device=degree.device)  # [B, k]
    for step in range(k):
        upper = degree - k + step  # [B] j, the largest value allowed at this step
        draw = torch.rand(rows, dtype=torch.float64, device=degree.device, generator=generator)
        t = torch.minimum((draw * (upper + 1)).long(), upper)  # [B] uniform in [0, j]
        if step > 0:
            seen = (chosen[:, :step] == t.unsqueeze(1)).any(dim=1)  # [B]
            t = torch.where(seen, upper, t)
        chosen[:, step] = t
    return chosen


class NeighborSampler:
    """Samples, for a set of seed nodes, one :class:`Block` per layer (see module docstring).

    Args:
        edge_index: ``[2, E]`` edges ``j -> i`` (row 0 sources, row 1 destinations).
        num_nodes: number of nodes ``N``.
        fanouts: in-edges kept per destination node, one entry per layer, **input layer
            first** (``[15, 10]``: 15 for the first layer, 10 for the output layer, the
            order of DGL's ``MultiLayerNeighborSampler``; PyG's ``num_neighbors`` lists
            the same values from the seeds outwards, i.e. reversed); ``-1`` keeps every
            in-edge.
        csr: a prebuilt :class:`InNeighbourCSR` of the same graph (built here if omitted).

    Sampling is without replacement over in-edges: a node with ``d`` in-edges keeps
    ``min(d, k)`` distinct ones. (On a graph with parallel edges the same source may appear
    twice; on a simple graph the sampled sources of a node are distinct.)
    """

    def __init__(
        self,
        edge_index: Tensor,
        num_nodes: int,
        fanouts: Sequence[int],
        csr: InNeighbourCSR | None = None,
    ) -> None:
        self.fanouts = check_fanouts(fanouts)
        if csr is None:
            csr = InNeighbourCSR(edge_index, num_nodes)
        elif csr.num_nodes != num_nodes:
            raise GraphInputError(
                f"csr was built for {csr.num_nodes} nodes but num_nodes={num_nodes}"
            )
        self.csr = csr
        self.num_nodes = num_nodes
        # Global id -> local id scratch map; -1 everywhere between calls.
        self._local = torch.full((num_nodes,), -1, dtype=torch.long, device=csr.col.device)

    @property
    def num_layers(self) -> int:
        return len(self.fanouts)

    def check_seeds(self, seeds: object) -> Tensor:
        """Return ``seeds`` as int64 ``[B]`` after checking range and uniqueness."""
        if not isinstance(seeds, Tensor):
            raise GraphInputError(f"seeds must be a torch.Tensor, got {type(seeds).__name__}")
        if seeds.dim() != 1 or seeds.is_floating_point() or seeds.dtype == torch.bool:
            raise GraphInputError(
                f"seeds must be a 1-D integer tensor of node ids, got dtype {seeds.dtype} and "
                f"shape {tuple(seeds.shape)}"
            )
        seeds = seeds.long()
        if seeds.numel() > 0:
            lo, hi = int(seeds.min()), int(seeds.max())
            if lo < 0 or hi >= self.num_nodes:
                bad = lo if lo < 0 else hi
                raise GraphInputError(
                    f"seeds contains node id {bad}; expected ids in [0, {self.num_nodes})"
                )
            if torch.unique(seeds).numel() != seeds.numel():
                raise GraphInputError("seeds contains repeated node ids; expected distinct ids")
        return seeds

    def sample_block(
        self, dst_nodes: Tensor, fanout: int, generator: torch.Generator | None = None
    ) -> Block:
        """One block: up to ``fanout`` in-edges of each node in ``dst_nodes`` ``[B]``.

        ``dst_nodes`` must be distinct valid ids (not checked here; see :meth:`sample`).
        ``fanout=-1`` keeps every in-edge (the exact neighbourhood).
        """
        csr = self.csr
        start = csr.rowptr[dst_nodes]  # [B]
        degree = csr.rowptr[dst_nodes + 1] - start  # [B]
        if fanout == -1 or dst_nodes.numel() == 0:
            positions, dst_local = self._all_in_edges(start, degree)
        else:
            positions, dst_local = self._sampled_in_edges(start, degree, fanout, generator)
        return self._relabel(dst_nodes, positions, dst_local)

    def sample(self, seeds: Tensor, generator: torch.Generator | None = None) -> list[Block]:
        """Blocks for ``seeds`` ``[B]`` (distinct ids), input layer first."""
        seeds = self.check_seeds(seeds)
        blocks: list[Block] = []
        frontier = seeds
        for fanout in reversed(self.fanouts):  # output layer first, walking towards inputs
            block = self.sample_block(frontier, fanout, generator)
            blocks.append(block)
            frontier = block.src_nodes
        blocks.reverse()
        return blocks

    # -- steps ------------------------------------------------------------------------------

    @staticmethod
    def _segments(counts: Tensor) -> tuple[Tensor, Tensor]:
        """Owner ``[T]`` and rank within its owner ``[T]`` of ``T = sum(counts)`` slots."""
        total = int(counts.sum())
        owner = torch.repeat_interleave(
            torch.arange(counts.numel(), device=counts.device), counts, output_size=total
        )  # [T]
        first = torch.cumsum(counts, 0) - counts  # [B] first slot of each node
        rank = torch.arange(total, device=counts.device) - first[owner]  # [T]
        return owner, rank

    @classmethod
    def _all_in_edges(cls, start: Tensor, degree: Tensor) -> tuple[Tensor, Tensor]:
        """Sorted positions ``[E_b]`` of every in-edge and the local destination of each."""
        dst_local, rank = cls._segments(degree)
        return start[dst_local] + rank, dst_local

    @classmethod
    def _sampled_in_edges(
        cls, start: Tensor, degree: Tensor, fanout: int, generator: torch.Generator | None
    ) -> tuple[Tensor, Tensor]:
        """Positions of ``min(d_i, fanout)`` distinct in-edges per node, and their owners.

        A node with ``d_i <= fanout`` keeps offsets ``0 .. d_i - 1``; a node with more
        in-edges gets ``fanout`` distinct offsets from :func:`_floyd_offsets`.
        """
        dst_local, offsets = cls._segments(degree.clamp(max=fanout))  # [E_b], [E_b]
        is_capped = degree > fanout  # [B]
        if bool(is_capped.any()):
            capped = is_capped.nonzero().flatten()  # [B_c]
            drawn = _floyd_offsets(degree[capped], fanout, generator)  # [B_c, fanout]
            row = torch.cumsum(is_capped, 0) - 1  # [B] row of each capped node in `drawn`
            slot = is_capped[dst_local]  # [E_b] slots owned by capped nodes
            offsets[slot] = drawn[row[dst_local[slot]], offsets[slot]]
        return start[dst_local] + offsets, dst_local

    def _relabel(self, dst_nodes: Tensor, positions: Tensor, dst_local: Tensor) -> Block:
        """Local ids: destinations first (in order), then new sources in ascending id."""
        local = self._local
        src_global = self.csr.col[positions]  # [E_b]
        num_dst = dst_nodes.numel()
        fresh = src_global[:0]  # [N_new] sources that are not destinations, set below
        local[dst_nodes] = torch.arange(num_dst, device=local.device)
        try:
            fresh = torch.unique(src_global[local[src_global] < 0])  # sorted
            local[fresh] = torch.arange(num_dst, num_dst + fresh.numel(), device=local.device)
            src_local = local[src_global]  # [E_b]
        finally:  # leave the scratch map all -1 for the next call
            local[dst_nodes] = -1
            local[fresh] = -1
        src_nodes = torch.cat([dst_nodes, fresh])  # [N_src]
        edge_index = torch.stack([src_local, dst_local])  # [2, E_b]
        return Block(src_nodes, num_dst, edge_index, self.csr.edge_ids[positions])


class NeighborLoader:
    """Iterates over shuffled batches of seed nodes, each with its sampled blocks.

    Every pass (``iter``) starts a new epoch: the seeds are permuted with a generator seeded
    by ``(seed, epoch)``, so the order is a function of the seed and the epoch only. With
    ``num_replicas > 1`` (data-parallel training) all replicas draw the same permutation and
    replica ``rank`` takes every ``num_replicas``-th seed from position ``rank``, truncated so
    that every replica gets the same number of seeds (and of batches). Neighbour sampling
    uses one generator per loader, seeded by ``(seed, rank)``.

    Args:
        sampler: the :class:`NeighborSampler`.
        seeds: ``[S]`` distinct node ids to iterate over (e.g. the training nodes).
        batch_size: seeds per batch.
        shuffle: permute the seeds every epoch (``False``: given order).
        drop_last: drop a last batch smaller than ``batch_size``.
        seed: base seed of the permutation and sampling generators.
        num_replicas, rank: data-parallel sharding (see above).
    """

    def __init__(
        self,
        sampler: NeighborSampler,
        seeds: Tensor,
        batch_size: int,
        *,
        shuffle: bool = True,
        drop_last: bool = False,
        seed: int = 0,
        num_replicas: int = 1,
        rank: int = 0,
    ) -> None:
        if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
        if not isinstance(num_replicas, int) or num_replicas < 1:
            raise ValueError(f"num_replicas must be a positive int, got {num_replicas!r}")
        if not isinstance(rank, int) or not 0 <= rank < num_replicas:
            raise ValueError(f"rank must be an int in [0, {num_replicas}), got {rank!r}")
        if not isinstance(seed, int) or seed < 0:
            raise ValueError(f"seed must be a non-negative int, got {seed!r}")
        self.sampler = sampler
        self.seeds = sampler.check_seeds(seeds)
        if self.seeds.numel() < num_replicas:
            raise ValueError(
                f"seeds has {self.seeds.numel()} nodes, fewer than num_replicas={num_replicas}"
            )
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.drop_last = drop_last
        self.seed = seed
        self.num_replicas = num_replicas
        self.rank = rank
        self.epoch = 0
        self.generator = torch.Generator(device=self.seeds.device)
        self.generator.manual_seed(seed * 1_000_003 + rank)

    @property
    def seeds_per_replica(self) -> int:
        """Seeds this replica visits per epoch."""
        return self.seeds.numel() // self.num_replicas

    def __len__(self) -> int:
        n = self.seeds_per_replica
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def epoch_seeds(self, epoch: int) -> Tensor:
        """``[S / num_replicas]`` this replica's seeds of ``epoch``, in visiting order."""
        seeds = self.seeds
        if self.shuffle:
            order_generator = torch.Generator(device=seeds.device)
            order_generator.manual_seed(self.seed * 1_000_003 + 7919 * (epoch + 1))
            seeds = seeds[
                torch.randperm(seeds.numel(), generator=order_generator, device=seeds.device)
            ]
        per_replica = self.seeds_per_replica
        return seeds[self.rank :: self.num_replicas][:per_replica]

    def __iter__(self) -> Iterator[MiniBatch]:
        seeds = self.epoch_seeds(self.epoch)
        self.epoch += 1
        for begin in range(0, len(self) * self.batch_size, self.batch_size):
            batch = seeds[begin : begin + self.batch_size]
            yield MiniBatch(batch, self.sampler.sample(batch, self.generator))
