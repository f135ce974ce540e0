"""Bad input raises GraphInputError before any computation, naming argument, expectation, value."""

from __future__ import annotations

import pytest
import torch

from gatkit import GraphInputError
from gatkit.nn import GATConv, GATv2Conv

OPERATORS = [GATConv, GATv2Conv]


@pytest.fixture
def graph():
    x = torch.randn(4, 3)
    edge_index = torch.tensor([[0, 1, 2], [1, 2, 3]])
    return x, edge_index


@pytest.mark.parametrize("operator", OPERATORS)
@pytest.mark.parametrize(
    "edge_index,pattern",
    [
        (torch.tensor([[0, 4], [1, 2]]), r"edge_index\[0\].*index 4.*only 4 source nodes"),
        (torch.tensor([[0, 1], [1, 9]]), r"edge_index\[1\].*index 9.*only 4 destination"),
        (torch.tensor([[0, -1], [1, 2]]), r"edge_index\[0\].*negative index -1"),
        (torch.tensor([[0.0, 1.0], [1.0, 2.0]]), r"edge_index must have an integer dtype.*float"),
        (torch.tensor([[0, 1], [1, 2], [2, 3]]), r"edge_index must have shape \[2, E\].*\(3, 2\)"),
        (torch.tensor([0, 1]), r"edge_index must have shape \[2, E\].*\(2,\)"),
        ([[0, 1], [1, 2]], r"edge_index must be a torch.Tensor.*list"),
    ],
)
def test_bad_edge_index_is_refused_with_named_argument(operator, graph, edge_index, pattern):
    x, _ = graph
    with pytest.raises(GraphInputError, match=pattern):
        operator(3, 2)(x, edge_index)


@pytest.mark.parametrize("operator", OPERATORS)
def test_feature_width_not_matching_in_channels_is_refused(operator, graph):
    x, edge_index = graph
    with pytest.raises(GraphInputError, match=r"x has 3 channels.*in_channels=5"):
        operator(5, 2)(x, edge_index)


@pytest.mark.parametrize("operator", OPERATORS)
def test_bipartite_target_width_is_checked(operator):
    layer = operator((3, 2), 2)
    edge_index = torch.tensor([[0], [0]])
    with pytest.raises(GraphInputError, match=r"x\[1\] \(target features\) has 3 channels"):
        layer((torch.randn(2, 3), torch.randn(2, 3)), edge_index)


@pytest.mark.parametrize("operator", OPERATORS)
def test_non_float_and_nan_features_are_refused(operator, graph):
    x, edge_index = graph
    with pytest.raises(GraphInputError, match=r"x must have a floating dtype, got torch.int64"):
        operator(3, 2)(x.long(), edge_index)
    bad = x.clone()
    bad[2, 1] = float("nan")
    with pytest.raises(GraphInputError, match=r"x contains NaN.*\[2\]"):
        operator(3, 2)(bad, edge_index)
    with pytest.raises(GraphInputError, match=r"shape \[num_nodes, channels\]"):
        operator(3, 2)(x[None], edge_index)


@pytest.mark.parametrize("operator", OPERATORS)
def test_edge_attr_rows_must_match_edge_count(operator, graph):
    x, edge_index = graph
    with pytest.raises(GraphInputError, match=r"edge_attr has 2 rows but edge_index has 3 edges"):
        operator(3, 2, edge_dim=4)(x, edge_index, edge_attr=torch.randn(2, 4))
    with pytest.raises(GraphInputError, match=r"edge_attr has 5 channels.*edge_dim=4"):
        operator(3, 2, edge_dim=4)(x, edge_index, edge_attr=torch.randn(3, 5))


@pytest.mark.parametrize("operator", OPERATORS)
def test_edge_features_given_to_layer_without_edge_dim_are_refused(operator, graph):
    x, edge_index = graph
    with pytest.raises(GraphInputError, match=r"built without edge features \(edge_dim=None\)"):
        operator(3, 2)(x, edge_index, edge_attr=torch.randn(3, 4))


@pytest.mark.parametrize("operator", OPERATORS)
def test_input_errors_are_raised_before_any_computation(operator, graph, monkeypatch):
    x, _ = graph
    layer = operator(3, 2)
    calls = []
    monkeypatch.setattr(layer.project_source, "forward", lambda t: calls.append(t) or t)
    with pytest.raises(GraphInputError):
        layer(x, torch.tensor([[0, 7], [1, 2]]))
    assert calls == []


@pytest.mark.parametrize("operator", OPERATORS)
@pytest.mark.parametrize("add_self_loops", [True, False])
def test_graph_without_edges_gives_self_attention_or_bias(operator, add_self_loops):
    layer = operator(3, 2, heads=2, add_self_loops=add_self_loops)
    x = torch.randn(5, 3)
    out, (used, alpha) = layer(
        x, torch.empty(2, 0, dtype=torch.long), return_attention_weights=True
    )
    assert out.shape == (5, 4) and torch.isfinite(out).all()
    assert used.shape == (2, 5 if add_self_loops else 0)
    assert alpha.shape == (used.size(1), 2)
    if not add_self_loops:
        assert torch.equal(out, layer.bias.detach().expand(5, 4))


@pytest.mark.parametrize("operator", OPERATORS)
def test_graph_without_nodes_gives_empty_output(operator):
    layer = operator(3, 2, heads=2, edge_dim=1)
    out = layer(torch.empty(0, 3), torch.empty(2, 0, dtype=torch.long), torch.empty(0, 1))
    assert out.shape == (0, 4)
    out.sum().backward()


@pytest.mark.parametrize("operator", OPERATORS)
def test_impossible_configuration_is_refused(operator):
    with pytest.raises(ValueError, match="heads must be a positive int, got 0"):
        operator(3, 2, heads=0)
    with pytest.raises(ValueError, match=r"dropout must lie in \[0, 1\), got 1.5"):
        operator(3, 2, dropout=1.5)
    with pytest.raises(ValueError, match="fill_value must be"):
        operator(3, 2, edge_dim=2, fill_value="median")


def test_repr_shows_configuration():
    assert repr(GATConv(3, 4, heads=8)) == "GATConv(3, 4, heads=8)"
    assert repr(GATv2Conv((3, 5), 4, heads=2, concat=False, edge_dim=2)) == (
        "GATv2Conv((3, 5), 4, heads=2, concat=False, edge_dim=2)"
    )
    assert repr(GATv2Conv(3, 4, share_weights=True)).endswith("share_weights=True)")


@pytest.mark.parametrize("operator", OPERATORS)
def test_reset_parameters_redraws_weights_and_zeroes_bias(operator):
    layer = operator(3, 4, heads=2)
    with torch.no_grad():
        for parameter in layer.parameters():
            parameter.fill_(7.0)
    layer.reset_parameters()
    assert torch.equal(layer.bias, torch.zeros_like(layer.bias))
    assert (layer.project_source.weight.abs() < 7.0).all()


def test_finite_check_sees_inf_and_is_not_fooled_by_an_overflowing_sum():
    from gatkit.validation import all_finite

    huge = torch.full((4, 3), 3e38)  # finite float32 values whose sum overflows to inf
    assert all_finite(huge)
    huge[1, 2] = float("inf")
    assert not all_finite(huge)
    mixed = torch.tensor([[float("inf"), float("-inf")]])  # sums to NaN
    assert not all_finite(mixed)
    assert all_finite(torch.empty(0, 3))
