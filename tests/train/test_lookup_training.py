"""Training on DictionaryLookup at small k: GATv2 solves it, GAT's attention stays static."""

import math

import pytest
import torch

from gatkit.data.dictionary_lookup import make_dictionary_lookup
from gatkit.models.lookup import LookupModel, LookupModelConfig
from gatkit.train.lookup import LookupTrainConfig, evaluate_lookup, train_lookup
from gatkit.train.lookup_attention import key_attention, lookup_attention_report

K = 5
CONFIG = LookupTrainConfig(steps=200, batch_size=128, eval_every=25)


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """One torch thread: small batches gain nothing from two, and shared cores thrash."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="module")
def problem():
    return make_dictionary_lookup(K, seed=0)


@pytest.fixture(scope="module")
def trained(problem):
    """GAT (1 head) and GATv2 (1 head) trained with the same small budget (~2 s of CPU)."""
    return {
        name: train_lookup(problem, LookupModelConfig(K, name, 1), CONFIG)
        for name in ("gat", "gatv2")
    }


def test_gatv2_reaches_full_train_and_test_accuracy_and_gat_one_head_stays_below(trained):
    gatv2, gat = trained["gatv2"], trained["gat"]
    assert gatv2.train.node == 1.0 and gatv2.train.graph == 1.0
    assert gatv2.test.node == 1.0
    assert gatv2.solved_at_step is not None and gatv2.steps == gatv2.solved_at_step
    assert gat.train.node < 0.9
    assert gat.steps == CONFIG.steps  # never solved, so it used the whole budget


def test_gat_argmax_key_is_the_same_for_every_query_of_a_graph(trained, problem):
    report = lookup_attention_report(trained["gat"].model, problem.test)
    assert report.same_key[0] == 1.0  # static attention, as Brody et al. prove
    assert report.correct_key[0] == pytest.approx(1 / K)  # right for exactly one query
    assert report.correct_key_lowest[0] == pytest.approx(1 / K)  # the argmin is static too
    assert report.correct_key_rank[0] == pytest.approx(0.5)  # every rank taken once


def test_gatv2_argmax_key_follows_the_query(trained, problem):
    report = lookup_attention_report(trained["gatv2"].model, problem.test)
    # The correct key is singled out, by the highest or (a strategy GATv2 also finds) the
    # lowest attention: either way the chosen key changes with the query.
    assert max(report.correct_key[0], report.correct_key_lowest[0]) > 0.9
    assert abs(report.correct_key_rank[0] - 0.5) > 0.4
    assert report.same_key[0] < 0.1


def test_key_attention_rows_sum_to_one_without_self_loops(trained, problem):
    dense = key_attention(trained["gatv2"].model, problem.test[:4])  # [4, k, k, 1]
    assert dense.shape == (4, K, K, 1)
    torch.testing.assert_close(dense.sum(dim=2), torch.ones(4, K, 1))


def test_graph_accuracy_never_exceeds_node_accuracy(problem):
    model = LookupModel(LookupModelConfig(K, "gat", 1))
    accuracy = evaluate_lookup(model, problem.train)
    assert 0.0 <= accuracy.graph <= accuracy.node <= 1.0
    assert accuracy.num_graphs == problem.train.size(0)
    assert math.isnan(evaluate_lookup(model, problem.train[:0]).node)


def test_training_is_reproducible_given_the_seed(problem):
    config = LookupTrainConfig(steps=5, batch_size=16, eval_every=5)
    a = train_lookup(problem, LookupModelConfig(K, "gatv2", 1), config)
    b = train_lookup(problem, LookupModelConfig(K, "gatv2", 1), config)
    for p, q in zip(a.model.parameters(), b.model.parameters(), strict=True):
        torch.testing.assert_close(p, q)


@pytest.mark.parametrize(
    ("kwargs", "word"),
    [({"steps": 0}, "steps"), ({"lr": 0.0}, "lr"), ({"plateau_factor": 1.5}, "plateau_factor")],
)
def test_bad_training_settings_are_refused_naming_the_argument(kwargs, word):
    with pytest.raises(ValueError, match=word):
        LookupTrainConfig(**kwargs)


def test_model_size_must_match_the_problem(problem):
    with pytest.raises(ValueError, match="k="):
        train_lookup(problem, LookupModelConfig(K + 1, "gat", 1), CONFIG)
