"""torch.autograd.gradcheck on both operators: inputs, edge features and parameters."""

from __future__ import annotations

import pytest
import torch
from torch.func import functional_call

from gatkit.nn import GATConv, GATv2Conv
from graph_cases import random_graph_case


@pytest.mark.parametrize("operator", [GATConv, GATv2Conv])
@pytest.mark.parametrize("bipartite", [False, True])
def test_gradcheck_inputs_edge_features_and_parameters(operator, bipartite):
    torch.manual_seed(0)
    if bipartite:
        case = random_graph_case(
            1,
            num_src=7,
            num_dst=5,
            in_src=3,
            in_dst=2,
            num_edges=14,
            edge_dim=2,
            isolated=1,
            duplicates=3,
            self_loops=2,
        )
        layer = operator((3, 2), 3, heads=2, edge_dim=2, residual=True).double()
    else:
        case = random_graph_case(
            1, num_src=7, in_src=3, num_edges=14, edge_dim=2, isolated=1, duplicates=3, self_loops=2
        )
        layer = operator(3, 3, heads=2, edge_dim=2, residual=True).double()
    names = [name for name, _ in layer.named_parameters()]
    params = [p.detach().clone().requires_grad_(True) for p in layer.parameters()]
    x_src = case.x_src.clone().requires_grad_(True)
    x_dst = case.x_dst.clone().requires_grad_(True)
    edge_attr = case.edge_attr.clone().requires_grad_(True)

    def run(x_src, x_dst, edge_attr, *parameters):
        x = (x_src, x_dst) if bipartite else x_src
        state = dict(zip(names, parameters, strict=True))
        return functional_call(layer, state, (x, case.edge_index, edge_attr))

    inputs = (x_src, x_dst if bipartite else x_src.detach(), edge_attr, *params)
    assert torch.autograd.gradcheck(run, inputs, eps=1e-6, atol=1e-6, rtol=1e-5)
