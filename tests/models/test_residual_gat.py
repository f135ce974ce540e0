"""The residual + LayerNorm GAT of the GATv2 paper's OGB recipe and its configuration."""

from __future__ import annotations

import pytest
import torch

from gatkit.models.residual_gat import ResidualGAT, ResidualGATConfig


def test_arxiv_recipe_defaults_match_the_gatv2_paper():
    config = ResidualGATConfig.arxiv_gatv2()
    assert (config.operator, config.num_layers, config.hidden_channels) == ("gatv2", 3, 256)
    assert (config.dropout, config.lr, config.epochs) == (0.25, 0.01, 50)
    assert config.residual and config.layer_norm
    assert ResidualGATConfig.arxiv_gatv2(heads=1).heads == 1


def test_residual_gat_maps_nodes_to_logits_and_round_trips_its_config():
    config = ResidualGATConfig(hidden_channels=16, heads=2)
    model = ResidualGAT(5, 3, config)
    x, edge_index = torch.randn(7, 5), torch.tensor([[0, 1, 2, 3], [1, 2, 3, 4]])
    assert model(x, edge_index).shape == (7, 3)
    assert len(model.norms) == 2 and isinstance(model.norms[0], torch.nn.LayerNorm)
    assert ResidualGATConfig.from_dict(config.to_dict()) == config


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("heads", 3, "hidden_channels must be divisible by heads"),
        ("num_layers", 1, "num_layers must be >= 2"),
        ("dropout", 1.0, r"dropout must lie in \[0, 1\)"),
        ("operator", "gcn", "operator must be one of"),
    ],
)
def test_impossible_settings_are_refused_with_the_field_named(field, value, message):
    with pytest.raises(ValueError, match=message):
        ResidualGATConfig(**{field: value})
