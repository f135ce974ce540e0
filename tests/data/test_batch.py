"""collate / GraphBatch / GraphLoader: disjoint union, unbatch identity, shuffling."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from gatkit.data import Graph
from gatkit.data.batch import GraphBatch, GraphLoader, collate
from gatkit.data.tu import load_tu
from gatkit.errors import GraphInputError
from gatkit.nn import GATv2Conv


@pytest.fixture(scope="module")
def mutag(shared_data_dir):
    return load_tu("MUTAG", root=shared_data_dir, download=False)


def assert_same_graph(a: Graph, b: Graph) -> None:
    assert type(a) is type(b)
    for f in dataclasses.fields(a):
        left, right = getattr(a, f.name), getattr(b, f.name)
        if isinstance(left, torch.Tensor):
            assert isinstance(right, torch.Tensor), f.name
            assert left.dtype == right.dtype and torch.equal(left, right), f.name
        else:
            assert left == right, f.name


def test_batching_then_unbatching_is_the_identity(mutag):
    graphs = list(mutag)[:13]
    batch = collate(graphs)
    for original, restored in zip(graphs, batch.unbatch(), strict=True):
        assert_same_graph(original, restored)


def test_unbatch_identity_for_plain_graphs_with_masks_and_node_labels():
    generator = torch.Generator().manual_seed(0)
    graphs = []
    for n in (1, 4, 3):
        graphs.append(
            Graph(
                x=torch.randn(n, 2, generator=generator),
                edge_index=torch.randint(0, n, (2, 2 * n), generator=generator),
                y=torch.randint(0, 3, (n,), generator=generator),
                train_mask=torch.rand(n, generator=generator) > 0.5,
                name=f"g{n}",
            )
        )
    for original, restored in zip(graphs, collate(graphs).unbatch(), strict=True):
        assert_same_graph(original, restored)


def test_batch_vector_ptr_and_edge_offsets(mutag):
    graphs = list(mutag)[:5]
    batch = collate(graphs)
    sizes = [g.num_nodes for g in graphs]
    assert batch.num_graphs == 5 and batch.num_nodes == sum(sizes)
    assert batch.ptr.tolist() == [0, *torch.tensor(sizes).cumsum(0).tolist()]
    assert torch.equal(batch.batch, torch.arange(5).repeat_interleave(torch.tensor(sizes)))
    # No edge leaves its graph, and graph g's edges are its own shifted by ptr[g].
    assert torch.equal(batch.batch[batch.edge_index[0]], batch.batch[batch.edge_index[1]])
    for g, graph in enumerate(graphs):
        e0, e1 = batch.edge_ptr[g], batch.edge_ptr[g + 1]
        assert torch.equal(batch.edge_index[:, e0:e1], graph.edge_index + batch.ptr[g])
    assert batch.y.shape == (5,) and batch.edge_label.shape == (batch.num_edges,)


def test_a_layer_on_the_union_equals_the_layer_on_each_graph(mutag):
    torch.manual_seed(0)
    layer = GATv2Conv(7, 4, heads=2, edge_dim=4).eval()
    graphs = list(mutag)[:6]
    batch = collate(graphs)
    together = layer(batch.x, batch.edge_index, edge_attr=batch.edge_attr)
    alone = torch.cat([layer(g.x, g.edge_index, edge_attr=g.edge_attr) for g in graphs])
    torch.testing.assert_close(together, alone)


def test_loader_shuffles_every_graph_once_per_epoch_reproducibly(mutag):
    graphs = list(mutag)[:50]
    names = {g.name for g in graphs}

    def epochs(seed: int) -> list[list[str]]:
        loader = GraphLoader(graphs, batch_size=16, shuffle=True, seed=seed)
        assert len(loader) == 4
        return [[n for b in loader for n in b.names] for _ in range(2)]

    first, second = epochs(3)
    assert set(first) == names and len(first) == 50 and set(second) == names
    assert first != second  # a fresh permutation every epoch
    assert epochs(3) == [first, second]  # and the same sequence for the same seed
    ordered = [n for b in GraphLoader(graphs, batch_size=16) for n in b.names]
    assert ordered == [g.name for g in graphs]


def test_batch_moves_every_tensor_to_a_device(mutag):
    batch = collate(list(mutag)[:3])
    assert batch.to("cpu") is batch
    moved = batch.to("meta")
    tensors = [moved.x, moved.edge_index, moved.batch, moved.ptr, moved.y, moved.edge_label]
    assert all(t.device.type == "meta" for t in [*tensors, *moved.node_fields.values()])


def test_loader_drop_last_and_batch_sizes(mutag):
    loader = GraphLoader(list(mutag)[:50], batch_size=16, drop_last=True)
    sizes = [b.num_graphs for b in loader]
    assert sizes == [16, 16, 16] and len(loader) == 3
    assert isinstance(next(iter(loader)), GraphBatch)


def test_collate_refuses_empty_and_mismatched_input(mutag):
    with pytest.raises(GraphInputError, match="at least one graph"):
        collate([])
    wide = Graph(x=torch.ones(2, 3), edge_index=torch.zeros(2, 0, dtype=torch.long))
    narrow = Graph(x=torch.ones(2, 2), edge_index=torch.zeros(2, 0, dtype=torch.long))
    with pytest.raises(GraphInputError, match="graph 1 has x of shape"):
        collate([wide, narrow])
    with pytest.raises(GraphInputError, match="a batch holds one class of graph"):
        collate([mutag[0], Graph(x=torch.ones(2, 7), edge_index=mutag[0].edge_index[:, :0])])
    with pytest.raises(GraphInputError, match="batch_size must be a positive int"):
        GraphLoader(list(mutag), batch_size=0)
