"""The DictionaryLookup model: shapes, the authors' layer settings, normalised attention."""

import pytest
import torch

from gatkit.data.dictionary_lookup import make_batch, make_dictionary_lookup
from gatkit.errors import GraphInputError
from gatkit.models.lookup import LookupModel, LookupModelConfig
from gatkit.nn import GATConv, GATv2Conv, record_attention


@pytest.fixture(scope="module")
def batch():
    return make_batch(make_dictionary_lookup(6, seed=0).train[:5])


def test_logits_have_one_row_per_query_and_k_classes(batch):
    model = LookupModel(LookupModelConfig(6, "gatv2", 1))
    logits = model(batch.tokens, batch.edge_index, batch.query_index)
    assert logits.shape == (5 * 6, 6)


def test_layers_use_the_authors_settings():
    gat = LookupModel(LookupModelConfig(6, "gat", 8)).attention
    assert isinstance(gat, GATConv) and gat.add_self_loops and gat.heads == 8
    assert gat.out_channels == 16  # 128 / 8 per head, concatenated
    gatv2 = LookupModel(LookupModelConfig(6, "gatv2", 1)).attention
    assert isinstance(gatv2, GATv2Conv) and gatv2.share_weights
    assert not gatv2.add_self_loops and gatv2.bias is None
    assert gatv2.project_source.bias is None
    classifier = LookupModel(LookupModelConfig(6, "gat", 1)).classifier
    assert classifier.bias is None


def test_evaluation_is_deterministic_without_the_dropout_artifact(batch):
    model = LookupModel(LookupModelConfig(6, "gat", 1)).eval()
    first = model(batch.tokens, batch.edge_index, batch.query_index)
    second = model(batch.tokens, batch.edge_index, batch.query_index)
    assert torch.equal(first, second)


@pytest.mark.parametrize(("name", "heads"), [("gat", 1), ("gat", 8), ("gatv2", 1), ("gatv2", 4)])
def test_attention_sums_to_one_over_each_querys_incoming_edges_per_head(batch, name, heads):
    model = LookupModel(LookupModelConfig(6, name, heads)).eval()
    with record_attention(model) as recorded:
        model(batch.tokens, batch.edge_index, batch.query_index)
    edge_index, alpha = recorded["attention"]  # [2, E'], [E', H]
    assert alpha.shape == (edge_index.size(1), heads)
    sums = torch.zeros(batch.num_nodes, heads, dtype=alpha.dtype).index_add(0, edge_index[1], alpha)
    torch.testing.assert_close(
        sums[batch.query_index], torch.ones(batch.query_index.numel(), heads)
    )
    in_degree = torch.bincount(edge_index[1], minlength=batch.num_nodes)[batch.query_index]
    expected = 6 + (1 if name == "gat" else 0)  # k keys, plus itself for GAT
    assert bool((in_degree == expected).all())


@pytest.mark.parametrize(
    ("kwargs", "word"),
    [
        ({"k": 1}, "k"),
        ({"k": 5, "model": "gcn"}, "model"),
        ({"k": 5, "heads": 0}, "heads"),
        ({"k": 5, "heads": 3}, "hidden"),
    ],
)
def test_bad_configuration_is_refused_naming_the_argument(kwargs, word):
    with pytest.raises(ValueError, match=word):
        LookupModelConfig(**kwargs)


@pytest.mark.parametrize(
    ("tokens", "word"),
    [
        (torch.zeros(4, 3, dtype=torch.long), "shape"),
        (torch.zeros(4, 2), "integer"),
        (torch.full((4, 2), 7), r"\[0, 6\]"),
    ],
)
def test_bad_tokens_are_refused_with_expected_and_actual(tokens, word):
    model = LookupModel(LookupModelConfig(6, "gat", 1))
    with pytest.raises(GraphInputError, match=word):
        model(tokens, torch.zeros(2, 0, dtype=torch.long), torch.arange(2))
