"""Attention entropy: zero for one-hot attention, log(deg) for uniform, per layer and head."""

import math

import pytest
import torch

from gatkit.data.dictionary_lookup import make_batch, make_dictionary_lookup
from gatkit.errors import GraphInputError
from gatkit.models.lookup import LookupModel, LookupModelConfig
from gatkit.train.attention_stats import attention_entropy, layer_entropies, uniform_entropy

# Node 0 has 4 in-edges, node 1 has 2, node 2 has none.
EDGES = torch.tensor([[1, 2, 3, 4, 0, 3], [0, 0, 0, 0, 1, 1]])


def test_uniform_attention_has_entropy_log_degree():
    alpha = torch.tensor([0.25, 0.25, 0.25, 0.25, 0.5, 0.5]).unsqueeze(-1)
    expected = (math.log(4) + math.log(2)) / 2  # node 2 has no in-edges: not counted
    assert attention_entropy(EDGES, alpha, num_nodes=5).item() == pytest.approx(expected)
    assert uniform_entropy(EDGES, num_nodes=5) == pytest.approx(expected)


def test_one_hot_attention_has_zero_entropy_and_heads_are_separate():
    one_hot = torch.tensor([1.0, 0.0, 0.0, 0.0, 0.0, 1.0])
    uniform = torch.tensor([0.25, 0.25, 0.25, 0.25, 0.5, 0.5])
    entropy = attention_entropy(EDGES, torch.stack([one_hot, uniform], dim=1), num_nodes=5)
    assert entropy.shape == (2,)
    assert entropy[0].item() == 0.0
    assert entropy[1].item() == pytest.approx((math.log(4) + math.log(2)) / 2)


def test_entropy_matches_the_formula_on_random_coefficients():
    alpha = torch.tensor([0.1, 0.2, 0.3, 0.4, 0.9, 0.1], dtype=torch.float64)
    h0 = -sum(a * math.log(a) for a in (0.1, 0.2, 0.3, 0.4))
    h1 = -sum(a * math.log(a) for a in (0.9, 0.1))
    got = attention_entropy(EDGES, alpha, num_nodes=5).item()
    assert got == pytest.approx((h0 + h1) / 2)


def test_layer_entropies_reports_every_head_below_the_uniform_bound():
    batch = make_batch(make_dictionary_lookup(5, seed=0).train[:3])
    model = LookupModel(LookupModelConfig(5, "gat", 8))
    entries = layer_entropies(
        model, lambda m: m(batch.tokens, batch.edge_index, batch.query_index), batch.num_nodes
    )
    assert [e.layer for e in entries] == ["attention"]
    assert len(entries[0].entropy) == 8
    assert all(0 <= h <= entries[0].uniform + 1e-6 for h in entries[0].entropy)
    assert "head 7" in entries[0].format()


def test_coefficients_of_the_wrong_length_are_refused():
    with pytest.raises(GraphInputError, match="alpha"):
        attention_entropy(EDGES, torch.ones(5, 1), num_nodes=5)
