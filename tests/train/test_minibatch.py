"""Mini-batch training on sampled blocks: the loss falls, checkpoints load, the CLI runs."""

from __future__ import annotations

import json

import pytest
import torch

from gatkit.cli.main import main
from gatkit.data.random_node_graph import random_node_graph
from gatkit.models import GAT, GATConfig
from gatkit.models.residual_gat import ResidualGAT, ResidualGATConfig
from gatkit.train import load_checkpoint, model_from_checkpoint
from gatkit.train.minibatch import MiniBatchNodeTrainer


@pytest.fixture(scope="module")
def graph():
    return random_node_graph(800, 6000, 16, 4, noise=1.5, seed=2)


def _losses(path):
    return [json.loads(line)["train_loss"] for line in path.read_text().splitlines()]


def test_sampled_training_lowers_the_loss_and_writes_a_loadable_checkpoint(graph, tmp_path):
    torch.manual_seed(0)
    config = GATConfig(operator="gatv2", dropout=0.1, attention_dropout=0.1, lr=0.01)
    model = GAT(16, 4, config)
    trainer = MiniBatchNodeTrainer(
        model,
        graph,
        fanouts=[5, 5],
        batch_size=64,
        epochs=4,
        checkpoint_path=tmp_path / "checkpoint.pt",
        metrics_path=tmp_path / "metrics.jsonl",
    )
    result = trainer.fit()
    losses = _losses(tmp_path / "metrics.jsonl")
    assert len(losses) == 4 and losses[-1] < 0.8 * losses[0]
    assert result.val_accuracy > 0.5
    restored = model_from_checkpoint(load_checkpoint(tmp_path / "checkpoint.pt")).eval()
    with torch.no_grad():
        torch.testing.assert_close(
            restored(graph.x, graph.edge_index), model.eval()(graph.x, graph.edge_index)
        )


def test_residual_recipe_trains_on_three_layer_blocks(graph):
    torch.manual_seed(0)
    model = ResidualGAT(16, 4, ResidualGATConfig(hidden_channels=32, heads=2))
    trainer = MiniBatchNodeTrainer(model, graph, fanouts=[4, 4, 4], batch_size=128, epochs=2)
    result = trainer.fit()
    assert result.epochs == 2 and result.final_train_loss < 1.5


def test_fanouts_must_match_the_number_of_layers(graph):
    with pytest.raises(ValueError, match=r"one value per model layer \(2\), got \[5\]"):
        MiniBatchNodeTrainer(GAT(16, 4), graph, fanouts=[5])


def test_cli_trains_with_the_neighbor_sampler(tmp_path, capsys):
    status = main(
        ["train", "--task", "node", "--sampler", "neighbor", "--dataset", "random-500-3000",
         "--fanouts", "4,4", "--batch-size", "100", "--epochs", "2", "--out", str(tmp_path),
         "--json"]
    )  # fmt: skip
    assert status == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["sampler"] == "neighbor" and summary["fanouts"] == [4, 4]
    assert summary["batch_size"] == 100 and summary["epochs"] == [2]
    assert (tmp_path / "random-500-3000-gat-neighbor" / "seed-0" / "checkpoint.pt").is_file()


def test_cli_refuses_fanouts_that_do_not_fit_the_model(tmp_path, capsys):
    status = main(
        ["train", "--sampler", "neighbor", "--dataset", "random-200-800", "--fanouts", "4",
         "--epochs", "1", "--out", str(tmp_path)]
    )  # fmt: skip
    assert status == 2
    assert "--fanouts must give one value per layer (2), got [4]" in capsys.readouterr().err
