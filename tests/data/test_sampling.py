"""Neighbour sampler and loader: fan-outs, no repeats, block layout, determinism, sharding."""

from __future__ import annotations

import itertools

import pytest
import torch

from gatkit.data.random_node_graph import random_node_graph
from gatkit.data.sampling import (
    InNeighbourCSR,
    NeighborLoader,
    NeighborSampler,
    _floyd_offsets,
)
from gatkit.errors import GraphInputError
from gatkit.nn import GATConv, GATv2Conv

FANOUTS = [4, 3]


@pytest.fixture(scope="module")
def graph():
    # 400 nodes, mean in-degree 8: many nodes above and below the fan-outs.
    return random_node_graph(400, 3200, 6, 3, seed=3)


def _in_degree(graph) -> torch.Tensor:
    return torch.bincount(graph.edge_index[1], minlength=graph.num_nodes)


def test_each_destination_keeps_min_of_degree_and_fanout_in_edges(graph):
    sampler = NeighborSampler(graph.edge_index, graph.num_nodes, FANOUTS)
    seeds = torch.randperm(graph.num_nodes, generator=torch.Generator().manual_seed(0))[:50]
    blocks = sampler.sample(seeds, torch.Generator().manual_seed(1))
    degree = _in_degree(graph)
    for block, fanout in zip(blocks, FANOUTS, strict=True):
        kept = torch.bincount(block.edge_index[1], minlength=block.num_dst)
        assert torch.equal(kept, degree[block.dst_nodes].clamp(max=fanout))


def test_sampled_neighbours_of_a_node_are_distinct_real_in_edges(graph):
    sampler = NeighborSampler(graph.edge_index, graph.num_nodes, [5, 5])
    blocks = sampler.sample(torch.arange(0, 400, 7), torch.Generator().manual_seed(2))
    edges = set(map(tuple, graph.edge_index.t().tolist()))
    for block in blocks:
        src = block.src_nodes[block.edge_index[0]]  # global ids
        dst = block.src_nodes[block.edge_index[1]]
        assert set(zip(src.tolist(), dst.tolist(), strict=True)) <= edges
        assert torch.equal(graph.edge_index[:, block.edge_ids], torch.stack([src, dst]))
        pairs = list(zip(block.edge_index[1].tolist(), src.tolist(), strict=True))
        assert len(pairs) == len(set(pairs)), "a neighbour was drawn twice for one node"


def test_blocks_chain_with_destinations_first(graph):
    sampler = NeighborSampler(graph.edge_index, graph.num_nodes, [3, 3, 2])
    seeds = torch.tensor([5, 17, 3, 250])
    blocks = sampler.sample(seeds, torch.Generator().manual_seed(0))
    assert torch.equal(blocks[-1].dst_nodes, seeds)
    for inner, outer in itertools.pairwise(blocks):
        assert torch.equal(inner.dst_nodes, outer.src_nodes)
    for block in blocks:
        assert block.src_nodes.unique().numel() == block.num_src
        assert int(block.edge_index[1].max()) < block.num_dst
        assert int(block.edge_index[0].max()) < block.num_src


@pytest.mark.parametrize("layer_type", [GATConv, GATv2Conv])
def test_blocks_feed_the_bipartite_layers_and_full_blocks_match_the_full_graph(graph, layer_type):
    torch.manual_seed(0)
    first, second = layer_type(6, 4, heads=2), layer_type(8, 3, heads=1)
    seeds = torch.tensor([0, 9, 31, 200, 399])

    def run(blocks):
        x = graph.x[blocks[0].src_nodes]
        for layer, block in zip((first, second), blocks, strict=True):
            x = layer((x, x[: block.num_dst]), block.edge_index)
        return x

    sampled = NeighborSampler(graph.edge_index, graph.num_nodes, FANOUTS).sample(seeds)
    assert run(sampled).shape == (5, 3)
    exact = NeighborSampler(graph.edge_index, graph.num_nodes, [-1, -1]).sample(seeds)
    full = second(first(graph.x, graph.edge_index), graph.edge_index)[seeds]
    torch.testing.assert_close(run(exact), full, atol=1e-5, rtol=1e-5)


def test_same_seed_gives_the_same_blocks_and_another_seed_differs(graph):
    sampler = NeighborSampler(graph.edge_index, graph.num_nodes, FANOUTS)
    seeds = torch.arange(0, 400, 3)

    def draw(seed):
        return sampler.sample(seeds, torch.Generator().manual_seed(seed))

    first, again, other = draw(11), draw(11), draw(12)
    for a, b in zip(first, again, strict=True):
        assert torch.equal(a.src_nodes, b.src_nodes)
        assert torch.equal(a.edge_index, b.edge_index)
    assert not all(torch.equal(a.edge_ids, c.edge_ids) for a, c in zip(first, other, strict=True))


def test_floyd_draws_every_subset_equally_often():
    degree = torch.full((30_000,), 5)
    chosen = _floyd_offsets(degree, 2, torch.Generator().manual_seed(0))  # [R, 2]
    assert bool((chosen[:, 0] != chosen[:, 1]).all()) and int(chosen.max()) == 4
    pairs = chosen.sort(dim=1).values
    counts = torch.bincount(pairs[:, 0] * 5 + pairs[:, 1], minlength=25)
    counts = counts[counts > 0].double() / degree.numel()
    assert counts.numel() == 10  # all C(5, 2) subsets occur
    assert float((counts - 0.1).abs().max()) < 0.01


def test_loader_visits_every_seed_once_per_epoch_in_a_new_order(graph):
    sampler = NeighborSampler(graph.edge_index, graph.num_nodes, FANOUTS)
    train = graph.train_mask.nonzero().flatten()
    loader = NeighborLoader(sampler, train, batch_size=64, seed=5)
    epochs = [torch.cat([batch.seeds for batch in loader]) for _ in range(2)]
    assert len(loader) == -(-train.numel() // 64)
    for seen in epochs:
        assert torch.equal(seen.sort().values, train.sort().values)
    assert not torch.equal(epochs[0], epochs[1])
    again = NeighborLoader(sampler, train, batch_size=64, seed=5)
    assert torch.equal(torch.cat([b.seeds for b in again]), epochs[0])


def test_loader_shards_are_disjoint_and_equal_in_size(graph):
    sampler = NeighborSampler(graph.edge_index, graph.num_nodes, FANOUTS)
    seeds = torch.arange(101)
    shards = [
        NeighborLoader(sampler, seeds, 16, seed=1, num_replicas=2, rank=rank).epoch_seeds(0)
        for rank in (0, 1)
    ]
    assert shards[0].numel() == shards[1].numel() == 50
    assert not set(shards[0].tolist()) & set(shards[1].tolist())


def test_bad_input_is_refused_with_the_argument_named(graph):
    sampler = NeighborSampler(graph.edge_index, graph.num_nodes, FANOUTS)
    with pytest.raises(GraphInputError, match="seeds contains node id 400"):
        sampler.sample(torch.tensor([1, 400]))
    with pytest.raises(GraphInputError, match="repeated"):
        sampler.sample(torch.tensor([1, 1]))
    with pytest.raises(ValueError, match=r"fanouts\[1\] must be a positive int or -1"):
        NeighborSampler(graph.edge_index, graph.num_nodes, [3, 0])
    with pytest.raises(ValueError, match="batch_size must be a positive int"):
        NeighborLoader(sampler, torch.arange(5), 0)
    with pytest.raises(GraphInputError, match="csr was built for 400 nodes"):
        NeighborSampler(graph.edge_index, 500, FANOUTS, csr=InNeighbourCSR(graph.edge_index, 400))


def test_nodes_without_in_edges_give_empty_neighbourhoods():
    edge_index = torch.tensor([[0, 1], [1, 2]])  # node 0 has no in-edge
    blocks = NeighborSampler(edge_index, 3, [2]).sample(torch.tensor([0, 2]))
    assert blocks[0].num_edges == 1 and blocks[0].src_nodes.tolist() == [0, 2, 1]
