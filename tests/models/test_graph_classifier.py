"""GraphClassifier: shapes, ablation switches, node-order invariance, input errors."""

from __future__ import annotations

import pytest
import torch

from gatkit.data.batch import collate
from gatkit.data.tu import load_tu
from gatkit.errors import GraphInputError
from gatkit.models.graph_classifier import GraphClassifier, GraphClassifierConfig


@pytest.fixture(scope="module")
def batch(shared_data_dir):
    return collate(list(load_tu("MUTAG", root=shared_data_dir, download=False))[:8])


def build(**overrides) -> GraphClassifier:
    torch.manual_seed(0)
    config = GraphClassifierConfig(
        in_channels=7, num_classes=2, num_edge_labels=4, hidden_channels=16, heads=2, **overrides
    )
    return GraphClassifier(config).eval()


def run(model, batch, **kwargs):
    return model(
        batch.x, batch.edge_index, batch.batch, batch.num_graphs, batch.edge_label, **kwargs
    )


@pytest.mark.parametrize("pooling", ["attention", "mean", "sum", "max"])
@pytest.mark.parametrize("edge_features", [True, False])
def test_logits_have_one_row_per_graph(batch, pooling, edge_features):
    model = build(pooling=pooling, edge_features=edge_features)
    logits, beta = run(model, batch, return_pool_weights=True)
    assert logits.shape == (8, 2) and bool(torch.isfinite(logits).all())
    assert (beta is not None) == (pooling == "attention")
    assert (model.edge_embedding is not None) == edge_features
    assert all((layer.edge_dim is not None) == edge_features for layer in model.layers)


def test_pool_weights_sum_to_one_per_graph(batch):
    _, beta = run(build(), batch, return_pool_weights=True)
    sums = torch.zeros(8).index_add(0, batch.batch, beta.detach())
    torch.testing.assert_close(sums, torch.ones(8))


def test_prediction_is_invariant_to_node_order_within_graphs(batch):
    model = build()
    before = run(model, batch)
    generator = torch.Generator().manual_seed(0)
    ptr = batch.ptr.tolist()
    order = torch.cat(
        [ptr[g] + torch.randperm(ptr[g + 1] - ptr[g], generator=generator) for g in range(8)]
    )
    new_id = torch.empty_like(order)
    new_id[order] = torch.arange(order.numel())
    after = model(batch.x[order], new_id[batch.edge_index], batch.batch[order], 8, batch.edge_label)
    torch.testing.assert_close(before, after)


def test_edge_labels_change_the_prediction_only_with_edge_features(batch):
    other = (batch.edge_label + 1) % 4
    with_edges, without = build(), build(edge_features=False)
    args = (batch.x, batch.edge_index, batch.batch, 8)
    assert not torch.allclose(with_edges(*args, batch.edge_label), with_edges(*args, other))
    torch.testing.assert_close(without(*args, batch.edge_label), without(*args, other))


def test_gradients_reach_the_edge_embedding(batch):
    model = build().train()
    run(model, batch).sum().backward()
    assert bool(model.edge_embedding.weight.grad.abs().sum() > 0)


def test_bad_edge_labels_are_refused(batch):
    model = build()
    args = (batch.x, batch.edge_index, batch.batch, 8)
    with pytest.raises(GraphInputError, match="edge_label is required"):
        model(*args, None)
    with pytest.raises(GraphInputError, match=r"expected values in \[0, 4\)"):
        model(*args, batch.edge_label + 4)
    with pytest.raises(GraphInputError, match=r"edge_label must have shape \[E\]"):
        model(*args, batch.edge_label[:-1])


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"pooling": "median"}, "pooling must be one of"),
        ({"hidden_channels": 10, "heads": 4}, "must be divisible by heads"),
        ({"dropout": 1.0}, r"dropout must lie in \[0, 1\)"),
        ({"num_layers": 0}, "num_layers must be a positive int"),
    ],
)
def test_config_refuses_impossible_settings(overrides, message):
    with pytest.raises(ValueError, match=message):
        GraphClassifierConfig(in_channels=7, num_classes=2, **overrides)
