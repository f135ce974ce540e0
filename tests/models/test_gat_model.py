"""GAT node classifier and its configuration: paper defaults, presets, shapes, layering."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from gatkit.models import GAT, GATConfig
from gatkit.models.gat import FeatureDropout
from gatkit.nn import GATConv, GATv2Conv


def test_config_defaults_are_the_gat_papers_cora_settings():
    c = GATConfig()
    assert (c.operator, c.num_layers, c.hidden_channels, c.heads, c.out_heads) == (
        "gat",
        2,
        8,
        8,
        1,
    )
    assert (c.dropout, c.attention_dropout, c.negative_slope) == (0.6, 0.6, 0.2)
    assert (c.lr, c.weight_decay, c.patience) == (0.005, 5e-4, 100)


def test_pubmed_preset_uses_eight_averaged_output_heads_and_its_optimiser_settings():
    c = GATConfig.for_dataset("PubMed", "gatv2")
    assert (c.operator, c.out_heads, c.lr, c.weight_decay) == ("gatv2", 8, 0.01, 1e-3)
    assert GATConfig.for_dataset("cora") == GATConfig()
    assert GATConfig.for_dataset("citeseer", patience=7).patience == 7


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("operator", "gcn"),
        ("heads", 0),
        ("dropout", 1.0),
        ("lr", 0.0),
        ("num_layers", 1.5),
        ("dropout_placement", "after"),
    ],
)
def test_invalid_config_is_refused_naming_the_field(field, value):
    with pytest.raises(ValueError, match=field):
        GATConfig(**{field: value})


def test_config_dict_round_trip_and_unknown_fields_refused():
    c = GATConfig(operator="gatv2", heads=4)
    assert GATConfig.from_dict(c.to_dict()) == c
    with pytest.raises(ValueError, match="unknown GATConfig fields"):
        GATConfig.from_dict({"operator": "gat", "hiden": 8})


@pytest.mark.parametrize(("operator", "layer_type"), [("gat", GATConv), ("gatv2", GATv2Conv)])
def test_model_stacks_the_chosen_operator_with_the_papers_widths(operator, layer_type):
    model = GAT(20, 5, GATConfig(operator=operator))
    assert [type(layer) for layer in model.layers] == [layer_type, layer_type]
    first, last = model.layers
    assert (first.heads, first.out_channels, first.concat) == (8, 8, True)
    assert (last.in_channels, last.heads, last.out_channels, last.concat) == (64, 1, 5, False)
    assert first.dropout == last.dropout == 0.6


@pytest.mark.parametrize("operator", ["gat", "gatv2"])
def test_per_head_placement_moves_input_dropout_into_every_head_and_onto_messages(operator):
    per_head = GAT(20, 5, GATConfig(operator=operator))
    assert GATConfig().dropout_placement == "per_head"  # the authors' code is the default
    assert per_head.input_dropout.p == 0.0
    for layer in per_head.layers:
        assert (layer.feature_dropout, layer.message_dropout) == (0.6, 0.6)
    shared = GAT(20, 5, GATConfig(operator=operator, dropout_placement="shared"))
    assert shared.input_dropout.p == 0.6
    for layer in shared.layers:
        assert (layer.feature_dropout, layer.message_dropout) == (0.0, 0.0)


@pytest.mark.parametrize("placement", ["per_head", "shared"])
def test_both_placements_train_and_are_deterministic_in_eval(placement):
    torch.manual_seed(0)
    x = (torch.rand(30, 40) < 0.1).float()  # bag-of-words-like: the sparse path
    edge_index = torch.randint(0, 30, (2, 120))
    y = torch.randint(0, 3, (30,))
    model = GAT(40, 3, GATConfig(dropout_placement=placement))
    optimiser = torch.optim.Adam(model.parameters(), lr=0.01)

    def eval_loss() -> float:
        model.eval()
        with torch.no_grad():
            return torch.nn.functional.cross_entropy(model(x, edge_index), y).item()

    before = eval_loss()
    for _ in range(60):
        model.train()
        optimiser.zero_grad()
        torch.nn.functional.cross_entropy(model(x, edge_index), y).backward()
        optimiser.step()
    assert eval_loss() < before
    model.eval()
    assert torch.equal(model(x, edge_index), model(x, edge_index))


def test_forward_gives_logits_per_node_and_eval_mode_is_deterministic():
    torch.manual_seed(0)
    x = torch.rand(10, 6)
    edge_index = torch.tensor([[0, 1, 2, 3, 4, 5, 6, 7, 8], [1, 2, 3, 4, 5, 6, 7, 8, 9]])
    model = GAT(6, 3, GATConfig(out_heads=2, num_layers=3)).eval()
    out = model(x, edge_index)
    assert out.shape == (10, 3)
    assert torch.equal(out, model(x, edge_index))


def test_feature_dropout_keeps_zeros_scales_survivors_and_is_identity_in_eval():
    torch.manual_seed(0)
    x = torch.zeros(200, 50)
    x[torch.rand(200, 50) < 0.05] = 1.0
    drop = FeatureDropout(0.6)
    out = drop(x)
    assert bool((out[x == 0] == 0).all())
    survivors = out[x != 0]
    assert set(survivors.unique().tolist()) <= {0.0, 2.5}
    kept = (survivors != 0).float().mean().item()
    assert 0.3 < kept < 0.5  # Bernoulli(0.4) over ~500 entries
    assert drop(x) is not out  # fresh masks, cached non-zero positions
    assert drop.eval()(x) is x


def test_models_layer_does_not_import_data_train_or_cli():
    code = (
        "import sys, gatkit.models\n"
        "bad = [m for m in sys.modules if m.startswith(('gatkit.data', 'gatkit.train', "
        "'gatkit.cli'))]\n"
        "print(bad)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
