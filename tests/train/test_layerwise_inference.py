"""Layer-wise inference over node batches equals full-batch evaluation."""

from __future__ import annotations

import pytest
import torch

from gatkit.data.random_node_graph import random_node_graph
from gatkit.models import GAT, GATConfig
from gatkit.models.residual_gat import ResidualGAT, ResidualGATConfig
from gatkit.train.layerwise import layerwise_inference


@pytest.fixture(scope="module")
def graph():
    g = random_node_graph(700, 5000, 10, 4, seed=7)
    # A self-loop, a parallel edge and an isolated destination make the check stricter.
    extra = torch.tensor([[5, 8, 8], [5, 9, 9]])
    g.edge_index = torch.cat([g.edge_index, extra], dim=1)
    return g


MODELS = {
    "gat": lambda: GAT(10, 4, GATConfig(operator="gat")),
    "gatv2": lambda: GAT(10, 4, GATConfig(operator="gatv2", num_layers=3)),
    "residual-gatv2": lambda: ResidualGAT(10, 4, ResidualGATConfig(hidden_channels=32, heads=4)),
}


@pytest.mark.parametrize("name", sorted(MODELS))
@pytest.mark.parametrize("batch_size", [61, 4096])
def test_layerwise_inference_equals_full_batch_forward(graph, name, batch_size):
    torch.manual_seed(0)
    model = MODELS[name]().eval()
    with torch.no_grad():
        full = model(graph.x, graph.edge_index)  # [N, C]
    layerwise = layerwise_inference(model, graph, batch_size=batch_size)
    assert layerwise.shape == full.shape
    torch.testing.assert_close(layerwise, full, atol=1e-5, rtol=1e-5)


def test_layerwise_inference_refuses_a_bad_batch_size(graph):
    with pytest.raises(ValueError, match="batch_size must be a positive int, got 0"):
        layerwise_inference(MODELS["gat"](), graph, batch_size=0)


def test_layerwise_inference_refuses_a_model_without_layer_steps(graph):
    with pytest.raises(TypeError, match="forward_layer"):
        layerwise_inference(torch.nn.Linear(10, 4), graph)
