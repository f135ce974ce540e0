"""Full-batch node trainer: resume to identical weights, metrics, refusal of foreign runs."""

from __future__ import annotations

import json

import pytest
import torch

from gatkit.errors import CheckpointError, DatasetError
from gatkit.models import GAT, GATConfig
from gatkit.train import NodeTrainer, load_checkpoint, seed_everything, set_deterministic
from synthetic_node_graph import community_graph


@pytest.fixture
def deterministic():
    was = torch.are_deterministic_algorithms_enabled()
    set_deterministic(True)
    yield
    set_deterministic(was)


class SimulatedCrashError(Exception):
    pass


def make_trainer(graph, operator, seed, folder, **kwargs):
    seed_everything(seed)
    model = GAT(graph.num_features, graph.num_classes, GATConfig(operator=operator, patience=10))
    return NodeTrainer(
        model,
        graph,
        seed=seed,
        max_epochs=16,
        checkpoint_path=folder / "checkpoint.pt",
        checkpoint_every=4,
        metrics_path=folder / "metrics.jsonl",
        metadata={"dataset": graph.name},
        **kwargs,
    )


def metrics_without_timing(path):
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    for row in rows:
        row.pop("seconds")
    return rows


@pytest.mark.parametrize("operator", ["gat", "gatv2"])
def test_resume_after_interruption_gives_bit_identical_weights(tmp_path, deterministic, operator):
    graph = community_graph()
    full = make_trainer(graph, operator, 3, tmp_path / "full")
    full_result = full.fit()

    def interrupt(epoch):
        if epoch == 10:  # last checkpoint at epoch 8: epochs 9-10 are trained again
            raise SimulatedCrashError

    broken = make_trainer(graph, operator, 3, tmp_path / "resumed", on_epoch_end=interrupt)
    with pytest.raises(SimulatedCrashError):
        broken.fit()
    assert load_checkpoint(tmp_path / "resumed" / "checkpoint.pt")["epoch"] == 8

    torch.manual_seed(12345)  # disturb every generator: resume must restore them
    torch.rand(100)
    resumed = make_trainer(graph, operator, 3, tmp_path / "resumed")
    resumed_result = resumed.fit(resume=True)

    timing = ("seconds_per_epoch", "cpu_seconds_per_epoch")
    untimed = [
        {k: v for k, v in result.to_dict().items() if k not in timing}
        for result in (full_result, resumed_result)
    ]
    assert untimed[0] == untimed[1]
    a = load_checkpoint(tmp_path / "full" / "checkpoint.pt")
    b = load_checkpoint(tmp_path / "resumed" / "checkpoint.pt")
    assert a["epoch"] == b["epoch"] and a["finished"] and b["finished"]
    for key in ("model_state", "best_state"):
        assert a[key].keys() == b[key].keys()
        for name in a[key]:
            assert torch.equal(a[key][name], b[key][name]), f"{key}[{name}] differs"
    for name, value in full.model.state_dict().items():
        assert torch.equal(value, resumed.model.state_dict()[name])
    assert metrics_without_timing(tmp_path / "full" / "metrics.jsonl") == metrics_without_timing(
        tmp_path / "resumed" / "metrics.jsonl"
    )


def test_training_learns_the_synthetic_task_and_writes_one_metrics_line_per_epoch(tmp_path):
    graph = community_graph()
    trainer = make_trainer(graph, "gat", 0, tmp_path)
    result = trainer.fit()
    assert result.test_accuracy >= 0.8
    rows = metrics_without_timing(tmp_path / "metrics.jsonl")
    assert [row["epoch"] for row in rows] == list(range(1, result.epochs + 1))
    assert set(rows[0]) == {
        "epoch",
        "train_loss",
        "train_acc",
        "val_loss",
        "val_acc",
        "improved",
        "kept",
    }
    assert rows[result.best_epoch - 1]["kept"]


def test_resume_of_a_finished_run_only_evaluates(tmp_path):
    graph = community_graph()
    first = make_trainer(graph, "gat", 1, tmp_path).fit()
    again = make_trainer(graph, "gat", 1, tmp_path).fit(resume=True)
    assert again.test_accuracy == first.test_accuracy
    assert again.epochs == first.epochs


def test_resume_refuses_checkpoint_of_another_configuration(tmp_path):
    graph = community_graph()
    make_trainer(graph, "gatv2", 0, tmp_path).fit()
    with pytest.raises(CheckpointError, match="operator: saved 'gatv2', now 'gat'"):
        make_trainer(graph, "gat", 0, tmp_path).fit(resume=True)
    with pytest.raises(CheckpointError, match="seed saved 0, now 5"):
        make_trainer(graph, "gatv2", 5, tmp_path).fit(resume=True)


def test_graph_without_split_is_refused_with_the_missing_fields(tmp_path):
    graph = community_graph()
    graph.val_mask = None
    model = GAT(graph.num_features, graph.num_classes)
    with pytest.raises(DatasetError, match="val_mask"):
        NodeTrainer(model, graph)


def test_feature_width_mismatch_is_refused():
    graph = community_graph()
    model = GAT(graph.num_features + 1, graph.num_classes)
    with pytest.raises(DatasetError, match="in_channels=13"):
        NodeTrainer(model, graph)
