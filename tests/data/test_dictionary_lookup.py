"""DictionaryLookup generator: graph layout, examples, the unseen-combination split, batching."""

import math

import pytest
import torch

from gatkit.data.dictionary_lookup import (
    make_batch,
    make_dictionary_lookup,
    num_allowed_pairs,
)


def test_one_graph_has_2k_nodes_and_every_key_to_query_edge_only():
    k = 5
    batch = make_batch(torch.tensor([[2, 0, 4, 1, 3]]))
    assert batch.num_nodes == 2 * k
    edges = set(map(tuple, batch.edge_index.t().tolist()))
    expected = {(k + j, i) for j in range(k) for i in range(k)}
    assert edges == expected
    assert batch.edge_index.size(1) == k * k  # no duplicates


def test_tokens_queries_carry_empty_value_and_keys_carry_the_permutation():
    k = 4
    permutation = torch.tensor([3, 1, 0, 2])
    batch = make_batch(permutation.unsqueeze(0))
    keys, values = batch.tokens[:, 0], batch.tokens[:, 1]
    assert keys.tolist() == [0, 1, 2, 3, 0, 1, 2, 3]
    assert values[:k].tolist() == [k] * k  # EMPTY = k on the queries
    assert values[k:].tolist() == permutation.tolist()  # key node k+i holds pi(i)
    assert batch.query_index.tolist() == [0, 1, 2, 3]
    assert batch.y.tolist() == permutation.tolist()  # target of query i is pi(i)


def test_batch_is_a_disjoint_union_with_targets_aligned_to_queries():
    problem = make_dictionary_lookup(6, seed=1)
    perms = problem.train[:7]
    batch = make_batch(perms)
    k, B = 6, 7
    assert batch.tokens.shape == (B * 2 * k, 2)
    assert batch.edge_index.shape == (2, B * k * k)
    src_graph, dst_graph = batch.edge_index // (2 * k)
    assert torch.equal(src_graph, dst_graph)  # no edge between graphs
    assert bool((batch.edge_index[0] % (2 * k) >= k).all())  # sources are key nodes
    assert bool((batch.edge_index[1] % (2 * k) < k).all())  # targets are query nodes
    for g in range(B):
        one = make_batch(perms[g : g + 1])
        nodes = slice(g * 2 * k, (g + 1) * 2 * k)
        assert torch.equal(batch.tokens[nodes], one.tokens)
        assert torch.equal(batch.y[g * k : (g + 1) * k], perms[g])
    assert torch.equal(batch.tokens[batch.query_index, 0], torch.arange(k).repeat(B))


def test_every_permutation_is_an_example_when_k_factorial_is_small():
    problem = make_dictionary_lookup(5, seed=0)
    everything = torch.cat([problem.train, problem.test])
    assert everything.size(0) == math.factorial(5)
    assert len({tuple(p) for p in everything.tolist()}) == math.factorial(5)


def test_32000_random_permutations_when_k_factorial_is_large():
    problem = make_dictionary_lookup(9, seed=0)
    everything = torch.cat([problem.train, problem.test])
    assert everything.size(0) == 32_000
    assert torch.equal(everything.sort(dim=1).values, torch.arange(9).expand(32_000, 9))


@pytest.mark.parametrize("k", [4, 7, 12])
def test_split_allows_int_of_08_to_the_1_over_k_times_k_squared_pairs(k):
    problem = make_dictionary_lookup(k, seed=3)
    assert num_allowed_pairs(k) == int(0.8 ** (1 / k) * k * k)
    assert int(problem.allowed.sum()) == num_allowed_pairs(k)
    rows = torch.arange(k)
    assert bool(problem.allowed[rows, problem.train].all())  # every training pair allowed
    assert bool((~problem.allowed[rows, problem.test]).any(dim=1).all())  # test: >= 1 unseen


def test_training_share_is_near_the_target_fraction():
    problem = make_dictionary_lookup(10, seed=0)
    share = problem.train.size(0) / (problem.train.size(0) + problem.test.size(0))
    assert 0.6 < share < 0.95


def test_generation_is_deterministic_given_the_seed():
    a, b, c = (make_dictionary_lookup(9, seed=s) for s in (5, 5, 6))
    assert torch.equal(a.train, b.train) and torch.equal(a.allowed, b.allowed)
    assert not torch.equal(a.allowed, c.allowed)


@pytest.mark.parametrize("k", [1, 0, 2.5, True])
def test_bad_size_is_refused_with_the_argument_named(k):
    with pytest.raises(ValueError, match="k"):
        make_dictionary_lookup(k)
