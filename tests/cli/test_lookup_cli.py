"""``gatkit lookup``: one run with --json and --save, and the sweep's CSV and PNG."""

import contextlib
import csv
import io
import json
import struct

import pytest

from gatkit.cli.main import main
from gatkit.train.lookup_sweep import CSV_COLUMNS, read_sweep_csv

FAST = ["--eval-every", "25", "--threads", "1"]


def run_cli(argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(argv)
    return code, out.getvalue(), err.getvalue()


def png_size(path) -> tuple[int, int]:
    """(width, height) from the IHDR chunk, after checking the PNG signature."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    """The sweep at k = 5 only: three short runs (a few seconds of CPU)."""
    out = tmp_path_factory.mktemp("sweep")
    argv = ["lookup", "--sweep", "--k-min", "5", "--k-max", "5", "--steps", "200"]
    code, stdout, _ = run_cli([*argv, "--batch-size", "128", "--out", str(out), *FAST])
    assert code == 0
    return out, stdout


def test_sweep_writes_one_csv_row_per_model_with_the_documented_columns(sweep):
    out, _ = sweep
    with (out / "lookup_sweep.csv").open() as handle:
        reader = csv.DictReader(handle)
        assert tuple(reader.fieldnames) == CSV_COLUMNS
        raw = list(reader)
    rows = read_sweep_csv(out / "lookup_sweep.csv")
    assert len(raw) == len(rows) == 3
    assert [(r["model"], r["heads"]) for r in rows] == [("gat", 1), ("gat", 8), ("gatv2", 1)]
    assert all(r["k"] == 5 and 0.0 <= r["train_accuracy"] <= 1.0 for r in rows)


def test_sweep_at_small_k_shows_gatv2_solving_the_task_and_gat_one_head_below(sweep):
    out, _ = sweep
    rows = {(r["model"], r["heads"]): r for r in read_sweep_csv(out / "lookup_sweep.csv")}
    assert rows["gatv2", 1]["train_accuracy"] == 1.0
    assert rows["gat", 1]["train_accuracy"] < 1.0
    assert rows["gat", 1]["same_key"] == 1.0 and rows["gat", 8]["same_key"] == 1.0  # static
    assert rows["gatv2", 1]["same_key"] < 1.0


def test_sweep_plot_is_a_png_of_the_documented_size(sweep):
    out, _ = sweep
    assert png_size(out / "lookup_sweep.png") == (700, 450)


def test_sweep_prints_a_table_with_one_line_per_k(sweep):
    _, stdout = sweep
    assert "| 5 |" in stdout and "GATv2 1h train / test" in stdout


def test_single_run_json_has_accuracies_model_and_budget(tmp_path):
    checkpoint = tmp_path / "lookup.pt"
    argv = ["lookup", "--k", "4", "--model", "gat", "--heads", "2", "--steps", "20", "--json"]
    code, stdout, _ = run_cli([*argv, "--save", str(checkpoint), *FAST])
    assert code == 0
    lines = stdout.strip().splitlines()
    assert len(lines) == 1
    result = json.loads(lines[0])
    for key in ("train_accuracy", "test_accuracy", "k", "model", "heads", "steps", "batch_size"):
        assert key in result
    assert (result["k"], result["model"], result["heads"]) == (4, "gat", 2)
    assert checkpoint.is_file()


def test_single_run_prints_train_and_test_accuracy():
    code, stdout, _ = run_cli(["lookup", "--k", "4", "--steps", "10", *FAST])
    assert code == 0
    assert "train accuracy" in stdout and "test accuracy" in stdout


@pytest.mark.parametrize(
    ("argv", "word"),
    [
        (["lookup", "--k", "1", "--steps", "5"], "k"),
        (["lookup", "--heads", "3", "--steps", "5"], "hidden"),
        (["lookup", "--steps", "0"], "steps"),
        (["lookup", "--sweep", "--k-min", "9", "--k-max", "5"], "k-min"),
        (["lookup", "--sweep", "--save", "model.pt"], "--save"),
        (["lookup", "--sweep", "--models", "gcn:1"], "--models"),
        (["lookup", "--sweep", "--models", "gatv2:0"], "--models"),
    ],
)
def test_bad_options_exit_with_status_2_and_a_message(argv, word):
    code, _, stderr = run_cli(argv)
    assert code == 2
    assert word in stderr


def test_sweep_runs_only_the_models_asked_for(tmp_path):
    argv = ["lookup", "--sweep", "--k-min", "4", "--k-max", "4", "--steps", "100"]
    code, stdout, _ = run_cli([*argv, "--models", "gatv2:1", "--out", str(tmp_path), *FAST])
    assert code == 0
    rows = read_sweep_csv(tmp_path / "lookup_sweep.csv")
    assert [(r["k"], r["model"], r["heads"]) for r in rows] == [(4, "gatv2", 1)]
    assert "GATv2 1h train / test" in stdout
