"""Global readouts: weights sum to one per graph, node-order invariance, reference values."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from gatkit.errors import GraphInputError
from gatkit.nn import GlobalAttentionPool, global_max_pool, global_mean_pool, global_sum_pool

SIZES = (4, 1, 6, 3)


def make_batch(seed: int = 0, width: int = 5):
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(sum(SIZES), width, generator=generator, dtype=torch.float64)
    batch = torch.arange(len(SIZES)).repeat_interleave(torch.tensor(SIZES))
    return x, batch


def make_pool(width: int = 5, feature_nn: bool = False) -> GlobalAttentionPool:
    torch.manual_seed(0)
    gate = nn.Sequential(nn.Linear(width, 8), nn.Tanh(), nn.Linear(8, 1)).double()
    features = nn.Linear(width, 3).double() if feature_nn else None
    return GlobalAttentionPool(gate, features)


def test_attention_weights_sum_to_one_per_graph():
    x, batch = make_batch()
    pooled, beta = make_pool()(x, batch, return_weights=True)
    assert pooled.shape == (len(SIZES), 5) and beta.shape == (x.size(0),)
    sums = torch.zeros(len(SIZES), dtype=beta.dtype).index_add(0, batch, beta)
    torch.testing.assert_close(sums, torch.ones(len(SIZES), dtype=beta.dtype))
    assert bool((beta > 0).all())
    assert float(beta.detach()[batch == 1]) == pytest.approx(1.0)  # a one-node graph: weight 1


@pytest.mark.parametrize("feature_nn", [False, True])
def test_attention_pool_matches_per_graph_formula(feature_nn):
    x, batch = make_batch()
    pool = make_pool(feature_nn=feature_nn)
    pooled = pool(x, batch)
    for g in range(len(SIZES)):
        h = x[batch == g]
        beta = torch.softmax(pool.gate_nn(h).squeeze(-1), dim=0)
        values = h if pool.feature_nn is None else pool.feature_nn(h)
        torch.testing.assert_close(pooled[g], (beta.unsqueeze(-1) * values).sum(0))


@pytest.mark.parametrize("readout", ["attention", "sum", "mean", "max"])
def test_readouts_are_invariant_to_node_order_within_each_graph(readout):
    x, batch = make_batch(seed=1)
    pool = make_pool()
    functions = {
        "attention": pool,
        "sum": global_sum_pool,
        "mean": global_mean_pool,
        "max": global_max_pool,
    }
    before = functions[readout](x, batch)
    # Permute nodes within each graph only (the batch vector stays sorted).
    generator = torch.Generator().manual_seed(2)
    starts = [0, *torch.tensor(SIZES).cumsum(0).tolist()]
    order = torch.cat(
        [
            start + torch.randperm(n, generator=generator)
            for start, n in zip(starts, SIZES, strict=False)
        ]
    )
    after = functions[readout](x[order], batch[order])
    torch.testing.assert_close(before, after)
    # Any order of the whole node list (batch vector unsorted) gives the same result too.
    shuffled = torch.randperm(x.size(0), generator=generator)
    torch.testing.assert_close(before, functions[readout](x[shuffled], batch[shuffled]))


def test_attention_weights_follow_the_nodes_when_permuted():
    x, batch = make_batch(seed=3)
    pool = make_pool()
    _, beta = pool(x, batch, return_weights=True)
    order = torch.randperm(x.size(0), generator=torch.Generator().manual_seed(4))
    _, beta_permuted = pool(x[order], batch[order], return_weights=True)
    torch.testing.assert_close(beta_permuted, beta[order])


def test_sum_mean_max_match_per_graph_reductions():
    x, batch = make_batch()
    for g in range(len(SIZES)):
        h = x[batch == g]
        torch.testing.assert_close(global_sum_pool(x, batch)[g], h.sum(0))
        torch.testing.assert_close(global_mean_pool(x, batch)[g], h.mean(0))
        torch.testing.assert_close(global_max_pool(x, batch)[g], h.max(0).values)


def test_graphs_without_nodes_pool_to_zero():
    x, batch = make_batch()
    for readout in (global_sum_pool, global_mean_pool, global_max_pool, make_pool()):
        out = readout(x, batch, num_graphs=len(SIZES) + 2)
        assert out.shape[0] == len(SIZES) + 2
        assert bool((out[len(SIZES) :] == 0).all())


def test_attention_pool_is_stable_for_huge_gate_scores():
    x, batch = make_batch()
    pool = GlobalAttentionPool(nn.Linear(5, 1).double())
    with torch.no_grad():
        pool.gate_nn.weight.fill_(1e4)
    pooled, beta = pool(x, batch, return_weights=True)
    assert bool(torch.isfinite(pooled).all()) and bool(torch.isfinite(beta).all())


def test_gradients_reach_gate_and_feature_networks():
    x, batch = make_batch()
    pool = make_pool(feature_nn=True)
    pool(x, batch).sum().backward()
    for name, parameter in pool.named_parameters():
        if name == "gate_nn.2.bias":  # softmax is shift-invariant: this bias gets no gradient
            torch.testing.assert_close(parameter.grad, torch.zeros_like(parameter))
            continue
        assert parameter.grad is not None and bool(parameter.grad.abs().sum() > 0), name


def test_bad_batch_vectors_are_refused_with_a_clear_message():
    x, batch = make_batch()
    pool = make_pool()
    with pytest.raises(GraphInputError, match=r"batch must have shape \[num_nodes\]"):
        pool(x, batch[:-1])
    with pytest.raises(GraphInputError, match="integer dtype"):
        global_sum_pool(x, batch.double())
    with pytest.raises(GraphInputError, match=r"num_graphs=2; expected ids in \[0, 2\)"):
        global_mean_pool(x, batch, num_graphs=2)
    with pytest.raises(GraphInputError, match=r"gate_nn must map x \[N, F\] to scores \[N, 1\]"):
        GlobalAttentionPool(nn.Linear(5, 2).double())(x, batch)
    with pytest.raises(TypeError, match="gate_nn must be a torch.nn.Module"):
        GlobalAttentionPool(lambda h: h)  # type: ignore[arg-type]
