"""GATConv and GATv2Conv agree with the dense O(N²) formulas to 1e-8 relative (float64)."""

from __future__ import annotations

import itertools

import pytest
import torch

from dense_reference import dense_forward
from gatkit.nn import GATConv, GATv2Conv
from graph_cases import assert_relative, random_graph_case

TOLERANCE = 1e-8


def build_case(bipartite: bool, edge_dim: int | None, seed: int):
    if bipartite:
        return random_graph_case(
            seed,
            num_src=11,
            num_dst=8,
            in_src=5,
            in_dst=3,
            edge_dim=edge_dim,
            unique_pairs=edge_dim is not None,
        )
    return random_graph_case(seed, edge_dim=edge_dim, unique_pairs=edge_dim is not None)


def build_layer(operator, bipartite: bool, **kwargs):
    in_channels = (5, 3) if bipartite else 5
    torch.manual_seed(0)
    return operator(in_channels, 4, **kwargs).double()


def check_against_dense(layer, case) -> None:
    """Outputs, attention and every gradient agree with the dense reference."""
    inputs = [case.x_src] + ([case.x_dst] if case.bipartite else [])
    if case.edge_attr is not None:
        inputs.append(case.edge_attr)
    for tensor in inputs:
        tensor.requires_grad_(True)
    out, (used, alpha) = layer(
        case.x, case.edge_index, edge_attr=case.edge_attr, return_attention_weights=True
    )
    weights = torch.randn_like(out)
    grads = torch.autograd.grad((out * weights).sum(), inputs + list(layer.parameters()))

    expected_out, expected_alpha, expected_used = dense_forward(layer, case)
    expected_grads = torch.autograd.grad(
        (expected_out * weights).sum(), inputs + list(layer.parameters()), allow_unused=True
    )
    assert torch.equal(used, expected_used)
    assert_relative(out, expected_out, TOLERANCE, "output")
    assert_relative(alpha, expected_alpha, TOLERANCE, "attention")
    names = ["x_src", "x_dst", "edge_attr"][: len(inputs)]
    names += [name for name, _ in layer.named_parameters()]
    for name, got, want in zip(names, grads, expected_grads, strict=True):
        assert_relative(got, want, TOLERANCE, f"gradient of {name}")


@pytest.mark.parametrize("operator", [GATConv, GATv2Conv])
@pytest.mark.parametrize(
    "heads,concat,add_self_loops,bipartite",
    list(itertools.product([1, 4], [True, False], [True, False], [False, True])),
)
def test_operator_matches_dense_formula(operator, heads, concat, add_self_loops, bipartite):
    case = build_case(bipartite, None, seed=heads + 10 * concat + 100 * add_self_loops)
    layer = build_layer(
        operator, bipartite, heads=heads, concat=concat, add_self_loops=add_self_loops
    )
    check_against_dense(layer, case)


@pytest.mark.parametrize("operator", [GATConv, GATv2Conv])
@pytest.mark.parametrize("fill_value", ["mean", "add", "max", "min", "mul", 0.5, "tensor"])
@pytest.mark.parametrize("bipartite", [False, True])
def test_edge_feature_attention_matches_dense_formula(operator, fill_value, bipartite):
    if fill_value == "tensor":
        fill_value = torch.tensor([0.3, -1.0, 2.0], dtype=torch.float64)
    case = build_case(bipartite, edge_dim=3, seed=7)
    layer = build_layer(operator, bipartite, heads=2, edge_dim=3, fill_value=fill_value)
    check_against_dense(layer, case)


@pytest.mark.parametrize("operator", [GATConv, GATv2Conv])
def test_residual_and_no_bias_match_dense_formula(operator):
    case = build_case(False, None, seed=3)
    layer = build_layer(operator, False, heads=3, residual=True, bias=False)
    check_against_dense(layer, case)


def test_gatv2_shared_weights_match_dense_formula():
    case = build_case(False, 2, seed=5)
    layer = build_layer(GATv2Conv, False, heads=2, share_weights=True, edge_dim=2)
    check_against_dense(layer, case)


@pytest.mark.parametrize("operator", [GATConv, GATv2Conv])
def test_large_scores_stay_finite_by_max_subtraction(operator):
    case = build_case(False, None, seed=11)
    layer = build_layer(operator, False, heads=2)
    with torch.no_grad():
        for parameter in layer.parameters():
            parameter.mul_(300.0)  # scores of order 1e4: exp() would overflow without the shift
    out, (_, alpha) = layer(case.x, case.edge_index, return_attention_weights=True)
    assert torch.isfinite(out).all() and torch.isfinite(alpha).all()
    expected_out, expected_alpha, _ = dense_forward(layer, case)
    assert_relative(out, expected_out, TOLERANCE, "output")
    assert_relative(alpha, expected_alpha, TOLERANCE, "attention")


@pytest.mark.parametrize("operator", [GATConv, GATv2Conv])
def test_node_without_incoming_edge_gets_zero_aggregate(operator):
    case = build_case(False, None, seed=2)
    layer = build_layer(operator, False, heads=2, add_self_loops=False, bias=False)
    out = layer(case.x, case.edge_index)
    has_incoming = torch.zeros(out.size(0), dtype=torch.bool)
    has_incoming[case.edge_index[1]] = True
    assert (~has_incoming).sum() >= 3
    assert torch.isfinite(out).all()
    assert torch.equal(out[~has_incoming], torch.zeros_like(out[~has_incoming]))


@pytest.mark.parametrize("operator", [GATConv, GATv2Conv])
def test_attention_sums_to_one_over_each_nodes_incoming_edges(operator):
    case = build_case(False, None, seed=4)
    layer = build_layer(operator, False, heads=3)
    _, (used, alpha) = layer(case.x, case.edge_index, return_attention_weights=True)
    sums = torch.zeros(case.x_dst.size(0), 3, dtype=alpha.dtype).index_add_(0, used[1], alpha)
    torch.testing.assert_close(sums, torch.ones_like(sums), rtol=0, atol=1e-12)
