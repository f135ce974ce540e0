"""``gatkit train --task graph``: JSON output and one-line errors."""

from __future__ import annotations

import json

from gatkit.cli.main import main


def test_train_graph_task_prints_one_json_object(shared_data_dir, capsys, tmp_path):
    output = tmp_path / "result.json"
    argv = ["train", "--task", "graph", "--dataset", "MUTAG", "--data-dir", str(shared_data_dir)]
    argv += ["--json", "--quiet", "--folds", "3", "--epochs", "1", "--hidden", "8"]
    argv += ["--heads", "2", "--layers", "1", "--pooling", "mean", "--output", str(output)]
    assert main(argv) == 0
    payload = json.loads(capsys.readouterr().out)
    for key in ("test_accuracy_mean", "test_accuracy_std", "fold_accuracies", "config", "seconds"):
        assert key in payload
    assert len(payload["fold_accuracies"]) == 3
    assert payload["config"]["model"]["pooling"] == "mean"
    assert payload["config"]["cv"]["folds"] == 3
    assert json.loads(output.read_text())["fold_accuracies"] == payload["fold_accuracies"]


def test_unknown_tu_dataset_is_a_one_line_error(tmp_path, capsys):
    argv = ["train", "--task", "graph", "--dataset", "NOPE", "--data-dir", str(tmp_path)]
    assert main(argv) == 2
    assert "NOPE: no files in" in capsys.readouterr().err
