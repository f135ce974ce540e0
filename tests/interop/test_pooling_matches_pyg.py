"""gatkit readouts agree with PyG's global pools and AttentionalAggregation (float64)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from gatkit.nn import GlobalAttentionPool, global_max_pool, global_mean_pool, global_sum_pool

pyg_nn = pytest.importorskip("torch_geometric.nn", reason="PyG is in the dev extra")

pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated")


def batch_case(seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    sizes = torch.tensor([3, 1, 7, 5])
    x = torch.randn(int(sizes.sum()), 6, generator=generator, dtype=torch.float64)
    return x, torch.arange(4).repeat_interleave(sizes)


def test_sum_mean_max_pools_match_pyg():
    x, batch = batch_case()
    pairs = [
        (global_sum_pool, pyg_nn.global_add_pool),
        (global_mean_pool, pyg_nn.global_mean_pool),
        (global_max_pool, pyg_nn.global_max_pool),
    ]
    for ours, theirs in pairs:
        torch.testing.assert_close(ours(x, batch), theirs(x, batch), rtol=1e-12, atol=1e-12)


def test_global_attention_pool_matches_pyg_attentional_aggregation():
    x, batch = batch_case(1)
    torch.manual_seed(0)
    gate = nn.Sequential(nn.Linear(6, 4), nn.ReLU(), nn.Linear(4, 1)).double()
    features = nn.Linear(6, 3).double()
    ours = GlobalAttentionPool(gate, features)(x, batch)
    theirs = pyg_nn.aggr.AttentionalAggregation(gate, features)(x, batch)
    torch.testing.assert_close(ours, theirs, rtol=1e-10, atol=1e-10)
