"""gatkit layers built by ``from_pyg`` agree with PyG's GATConv / GATv2Conv (float64, 1e-6).

Outputs, attention weights, and the gradients of inputs and parameters are compared, on
graphs with isolated nodes, duplicate edges and existing self-loops.
"""

from __future__ import annotations

import itertools

import pytest
import torch

from gatkit.interop import from_pyg, to_pyg
from gatkit.nn import GATConv, GATv2Conv
from graph_cases import assert_relative, random_graph_case

pyg_conv = pytest.importorskip("torch_geometric.nn.conv", reason="PyG is in the dev extra")

TOLERANCE = 1e-6
OPERATORS = {"gat": pyg_conv.GATConv, "gatv2": pyg_conv.GATv2Conv}


def make_case(bipartite: bool, edge_dim: int | None, seed: int):
    if bipartite:
        # PyG computes the loop features of a bipartite graph over min(N_s, N_t) destinations,
        # so keep N_s >= N_t when edge features are used.
        return random_graph_case(seed, num_src=11, num_dst=8, in_src=5, in_dst=3, edge_dim=edge_dim)
    return random_graph_case(seed, edge_dim=edge_dim)


def compare_with_pyg(pyg_layer, case) -> None:
    """Run both layers on ``case``; compare outputs, attention and all gradients."""
    layer = from_pyg(pyg_layer)
    results = []
    for module in (pyg_layer, layer):
        inputs = [case.x_src.clone().requires_grad_(True)]
        if case.bipartite:
            inputs.append(case.x_dst.clone().requires_grad_(True))
        x = tuple(inputs) if case.bipartite else inputs[0]
        edge_attr = None
        if case.edge_attr is not None:
            edge_attr = case.edge_attr.clone().requires_grad_(True)
            inputs.append(edge_attr)
        out, (used, alpha) = module(
            x, case.edge_index, edge_attr=edge_attr, return_attention_weights=True
        )
        torch.manual_seed(123)
        weights = torch.randn_like(out)
        (out * weights).sum().backward()
        results.append((out, used, alpha, [t.grad for t in inputs]))
    (out_p, used_p, alpha_p, grads_p), (out_g, used_g, alpha_g, grads_g) = results
    assert torch.equal(used_p, used_g)
    assert_relative(out_g, out_p, TOLERANCE, "output")
    assert_relative(alpha_g, alpha_p, TOLERANCE, "attention")
    for index, (got, want) in enumerate(zip(grads_g, grads_p, strict=True)):
        assert_relative(got, want, TOLERANCE, f"gradient of input {index}")
    compare_parameter_gradients(pyg_layer, layer)


def compare_parameter_gradients(pyg_layer, layer) -> None:
    """Each PyG parameter's gradient equals that of the gatkit parameter it maps to."""
    mapped = gatkit_parameters_by_pyg_name(layer)
    for name, parameter in pyg_layer.named_parameters():
        assert mapped.get(name) is not None, f"no gatkit parameter maps to PyG's {name}"
        got = mapped[name].grad.reshape(parameter.shape)
        assert_relative(got, parameter.grad, TOLERANCE, f"gradient of {name}")


def gatkit_parameters_by_pyg_name(layer) -> dict[str, torch.Tensor | None]:
    """The gatkit parameter behind each PyG parameter name (written out, independent of interop)."""
    lookup: dict[str, torch.Tensor | None] = {}
    if isinstance(layer, GATv2Conv):
        target = layer.project_target or layer.project_source
        lookup["lin_l.weight"] = layer.project_source.weight
        lookup["lin_l.bias"] = layer.project_source.bias
        lookup["lin_r.weight"] = target.weight
        lookup["lin_r.bias"] = target.bias
        lookup["att"] = layer.att
    else:
        lookup["lin.weight"] = layer.project_source.weight
        lookup["lin_src.weight"] = layer.project_source.weight
        if layer.project_target is not None:
            lookup["lin_dst.weight"] = layer.project_target.weight
        lookup["att_src"] = layer.att_source
        lookup["att_dst"] = layer.att_target
        lookup["att_edge"] = layer.att_edge
    if layer.project_edge is not None:
        lookup["lin_edge.weight"] = layer.project_edge.weight
    if layer.residual_projection is not None:
        lookup["res.weight"] = layer.residual_projection.weight
    lookup["bias"] = layer.bias
    return lookup


def build_pyg(kind: str, bipartite: bool, seed: int, **kwargs):
    torch.manual_seed(seed)
    in_channels = (5, 3) if bipartite else 5
    module = OPERATORS[kind](in_channels, 4, **kwargs).double()
    with torch.no_grad():  # PyG zero-initialises biases: make them count in the comparison
        for name, parameter in module.named_parameters():
            if "bias" in name:
                parameter.normal_()
    return module


@pytest.mark.parametrize("kind", ["gat", "gatv2"])
@pytest.mark.parametrize(
    "heads,concat,add_self_loops,bipartite",
    list(itertools.product([1, 8], [True, False], [True, False], [False, True])),
)
def test_layer_matches_pyg(kind, heads, concat, add_self_loops, bipartite):
    pyg_layer = build_pyg(
        kind, bipartite, seed=heads, heads=heads, concat=concat, add_self_loops=add_self_loops
    )
    compare_with_pyg(pyg_layer, make_case(bipartite, None, seed=heads + 2 * concat))


@pytest.mark.parametrize("kind", ["gat", "gatv2"])
@pytest.mark.parametrize("fill_value", ["mean", "add", "max", "min", "mul", 0.5, "tensor"])
@pytest.mark.parametrize("bipartite", [False, True])
def test_edge_features_match_pyg_for_each_fill_value(kind, fill_value, bipartite):
    if fill_value == "tensor":
        fill_value = torch.tensor([0.3, -1.0, 2.0], dtype=torch.float64)
    pyg_layer = build_pyg(kind, bipartite, seed=1, heads=8, edge_dim=3, fill_value=fill_value)
    compare_with_pyg(pyg_layer, make_case(bipartite, 3, seed=9))


@pytest.mark.parametrize("kind", ["gat", "gatv2"])
@pytest.mark.parametrize("concat", [True, False])
@pytest.mark.parametrize("bipartite", [False, True])
def test_residual_matches_pyg(kind, concat, bipartite):
    pyg_layer = build_pyg(kind, bipartite, seed=2, heads=8, concat=concat, residual=True)
    compare_with_pyg(pyg_layer, make_case(bipartite, None, seed=4))


@pytest.mark.parametrize("heads", [1, 8])
@pytest.mark.parametrize("edge_dim", [None, 2])
def test_gatv2_shared_weights_match_pyg(heads, edge_dim):
    pyg_layer = build_pyg(
        "gatv2", False, seed=3, heads=heads, share_weights=True, edge_dim=edge_dim
    )
    compare_with_pyg(pyg_layer, make_case(False, edge_dim, seed=5))


@pytest.mark.parametrize("kind", ["gat", "gatv2"])
def test_attention_dropout_matches_pyg_in_training_mode(kind):
    pyg_layer = build_pyg(kind, False, seed=4, heads=8, dropout=0.5).train()
    layer = from_pyg(pyg_layer)
    case = make_case(False, None, seed=6)
    torch.manual_seed(7)
    expected = pyg_layer(case.x, case.edge_index)
    torch.manual_seed(7)
    actual = layer(case.x, case.edge_index)
    assert_relative(actual, expected, TOLERANCE, "output with attention dropout")


@pytest.mark.parametrize("kind", ["gat", "gatv2"])
@pytest.mark.parametrize("bipartite", [False, True])
def test_round_trip_through_pyg_keeps_configuration_and_weights(kind, bipartite):
    pyg_layer = build_pyg(kind, bipartite, seed=5, heads=2, edge_dim=3, residual=True)
    layer = from_pyg(pyg_layer)
    back = to_pyg(layer)
    assert type(back) is type(pyg_layer)
    for (name, a), (_, b) in zip(
        pyg_layer.named_parameters(), back.named_parameters(), strict=True
    ):
        assert torch.equal(a, b), name
    assert isinstance(layer, GATConv if kind == "gat" else GATv2Conv)
    assert layer.heads == 2 and layer.edge_dim == 3 and layer.residual


def test_from_pyg_refuses_other_modules():
    with pytest.raises(TypeError, match="GATConv or GATv2Conv"):
        from_pyg(torch.nn.Linear(2, 2))
    with pytest.raises(TypeError, match="GATConv or GATv2Conv"):
        to_pyg(torch.nn.Linear(2, 2))
