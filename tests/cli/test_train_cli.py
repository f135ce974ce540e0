"""``gatkit train`` and ``gatkit evaluate``: JSON output, checkpoints, clear failures."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from gatkit.cli.main import main
from gatkit.train.checkpoint import load_checkpoint, save_checkpoint

JSON_KEYS = {
    "test_accuracy_mean",
    "test_accuracy_std",
    "test_accuracies",
    "seconds_per_epoch",
    "epochs",
    "config",
    "seeds",
    "dataset",
    "model",
}


@pytest.fixture(scope="module")
def cora_run(tmp_path_factory, shared_data_dir):
    """One short two-seed GATv2 run on Cora, shared by the tests of this module."""
    out = tmp_path_factory.mktemp("runs")
    argv = ["train", "--dataset", "cora", "--model", "gatv2", "--seeds", "2", "--epochs", "3"]
    argv += ["--data-dir", str(shared_data_dir), "--out", str(out), "--json", "--threads", "2"]
    return out, argv


def run_cli(argv, capsys):
    code = main(argv)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_train_json_prints_one_object_with_the_documented_keys(cora_run, capsys):
    out, argv = cora_run
    code, stdout, _ = run_cli(argv, capsys)
    assert code == 0
    summary = json.loads(stdout)
    assert set(summary) >= JSON_KEYS
    assert summary["epochs"] == [3, 3] and summary["seeds"] == [0, 1]
    assert summary["config"]["operator"] == "gatv2" and summary["config"]["heads"] == 8
    assert 0.0 <= summary["test_accuracy_mean"] <= 1.0
    assert len(summary["test_accuracies"]) == 2
    assert (out / "cora-gatv2" / "seed-1" / "checkpoint.pt").is_file()
    assert (out / "cora-gatv2" / "summary.json").is_file()


def test_evaluate_reloads_the_checkpoint_and_reproduces_its_accuracy(
    cora_run, capsys, shared_data_dir
):
    out, argv = cora_run
    data = ["--data-dir", str(shared_data_dir)]
    summary = json.loads(run_cli(argv + ["--resume"], capsys)[1])  # finished: evaluate only
    checkpoint = out / "cora-gatv2" / "seed-1" / "checkpoint.pt"
    code, stdout, _ = run_cli(["evaluate", str(checkpoint), "--json", *data], capsys)
    assert code == 0
    scores = json.loads(stdout)
    assert scores["dataset"] == "cora" and scores["model"] == "gatv2" and scores["seed"] == 1
    assert scores["test_accuracy"] == pytest.approx(summary["test_accuracies"][1])
    code, stdout, _ = run_cli(["evaluate", str(checkpoint), *data], capsys)
    assert code == 0 and "test accuracy" in stdout


def test_human_output_reports_mean_std_and_time_per_epoch(cora_run, capsys):
    _, argv = cora_run
    code, stdout, _ = run_cli([a for a in argv if a != "--json"] + ["--resume", "--quiet"], capsys)
    assert code == 0
    assert "test accuracy" in stdout and "±" in stdout and "s per epoch" in stdout


def test_evaluate_refuses_a_checkpoint_of_another_model_kind(tmp_path, capsys):
    path = save_checkpoint(
        tmp_path / "other.pt",
        {"model_kind": "graph-classifier", "config": {}, "model_args": {}, "model_state": {}},
    )
    code, _, err = run_cli(["evaluate", str(path)], capsys)
    assert code == 2
    assert "'graph-classifier' model" in err and "Traceback" not in err


def test_evaluate_refuses_a_file_that_is_not_a_checkpoint(tmp_path, capsys):
    path = tmp_path / "notes.pt"
    path.write_text("hello")
    code, _, err = run_cli(["evaluate", str(path)], capsys)
    assert code == 2 and "not a readable gatkit checkpoint" in err


def test_resume_refuses_a_checkpoint_of_another_model(cora_run, tmp_path, capsys):
    out, argv = cora_run
    other = tmp_path / "runs"
    record = load_checkpoint(out / "cora-gatv2" / "seed-0" / "checkpoint.pt")
    record["config"]["operator"] = "gat"
    save_checkpoint(other / "cora-gatv2" / "seed-0" / "checkpoint.pt", record)
    argv = [a if a != str(out) else str(other) for a in argv] + ["--resume"]
    code, _, err = run_cli(argv, capsys)
    assert code == 2
    assert "operator: saved 'gat', now 'gatv2'" in err and "Traceback" not in err


def test_unknown_dataset_exits_non_zero_with_one_line_and_no_traceback():
    result = subprocess.run(
        [sys.executable, "-m", "gatkit.cli.main", "train", "--dataset", "kora"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2
    assert "unknown dataset 'kora'" in result.stderr and "cora, citeseer, pubmed" in result.stderr
    assert "Traceback" not in result.stderr


def test_missing_data_exits_non_zero_naming_the_folder(tmp_path, capsys, monkeypatch):
    import gatkit.data.planetoid as planetoid

    monkeypatch.setattr(planetoid, "PLANETOID_URL", "http://127.0.0.1:9/")  # never downloads
    code, _, err = run_cli(
        ["train", "--dataset", "citeseer", "--data-dir", str(tmp_path), "--quiet"], capsys
    )
    assert code == 2
    assert str(tmp_path) in err and "Traceback" not in err


@pytest.mark.parametrize("option", [["--seeds", "0"], ["--epochs", "-3"], ["--jobs", "0"]])
def test_impossible_numbers_are_refused_by_option_name(option, capsys):
    code, _, err = run_cli(["train", "--dataset", "cora", *option], capsys)
    assert code == 2 and option[0] in err


@pytest.mark.parametrize("command", [["train"], ["evaluate"]])
def test_help_is_available_for_every_command(command, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([*command, "--help"])
    assert exit_info.value.code == 0
    assert "usage: gatkit" in capsys.readouterr().out


def test_min_val_loss_stopping_is_recorded_and_runs_in_its_own_folder(
    tmp_path, capsys, shared_data_dir
):
    argv = ["train", "--dataset", "cora", "--model", "gat", "--epochs", "4", "--json"]
    argv += ["--stopping", "min-val-loss", "--dropout-placement", "shared", "--threads", "2"]
    argv += ["--data-dir", str(shared_data_dir), "--out", str(tmp_path)]
    code, stdout, _ = run_cli(argv, capsys)
    assert code == 0
    summary = json.loads(stdout)
    assert summary["config"]["stopping"] == "min-val-loss"
    assert summary["config"]["max_epochs"] == 1000 and summary["epochs"] == [4]
    assert (tmp_path / "cora-gat-shared-min-val-loss" / "seed-0" / "checkpoint.pt").is_file()


def test_mask_generator_is_recorded_and_reaches_the_seed_workers(tmp_path, capsys, shared_data_dir):
    """``--masks torch`` in two worker processes gives what it gives in one process, and
    differs from the default Philox masks; the summary records the generator."""
    argv = ["train", "--dataset", "cora", "--model", "gat", "--epochs", "3", "--seeds", "2"]
    argv += ["--json", "--threads", "1", "--data-dir", str(shared_data_dir)]
    losses = {}
    for name, extra in {
        "torch": ["--masks", "torch"],
        "torch-2-jobs": ["--masks", "torch", "--jobs", "2"],
        "philox": ["--masks", "philox"],
    }.items():
        code, stdout, _ = run_cli([*argv, "--out", str(tmp_path / name), *extra], capsys)
        assert code == 0
        summary = json.loads(stdout)
        assert summary["mask_generator"] == name.split("-")[0]
        losses[name] = [run["val_loss"] for run in summary["runs"]]
    assert losses["torch-2-jobs"] == losses["torch"]
    assert losses["philox"] != losses["torch"]
