"""``gatkit attention``: PNG and CSV of a node's incoming attention, entropy per layer and head."""

import contextlib
import csv
import io
import struct
from collections import defaultdict

import pytest

from gatkit.cli.main import main

K = 4


def run_cli(argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(argv)
    return code, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def lookup_checkpoint(tmp_path_factory):
    path = tmp_path_factory.mktemp("ckpt") / "lookup.pt"
    argv = ["lookup", "--k", str(K), "--model", "gat", "--heads", "2", "--steps", "20"]
    code, _, _ = run_cli([*argv, "--threads", "1", "--save", str(path)])
    assert code == 0
    return path


def test_png_of_a_lookup_query_is_written_and_entropy_is_printed(lookup_checkpoint, tmp_path):
    out = tmp_path / "attention.png"
    code, stdout, _ = run_cli(
        ["attention", str(lookup_checkpoint), "--node", "1", "--out", str(out)]
    )
    assert code == 0
    data = out.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert struct.unpack(">II", data[16:24]) == (600, 600)  # width, height from IHDR
    assert "head 0" in stdout and "head 1" in stdout and "uniform" in stdout


def test_csv_lists_every_incoming_edge_per_head_with_weights_summing_to_one(
    lookup_checkpoint, tmp_path
):
    out = tmp_path / "attention.csv"
    argv = ["attention", str(lookup_checkpoint), "--node", "2", "--head", "all"]
    code, _, _ = run_cli([*argv, "--format", "csv", "--out", str(out)])
    assert code == 0
    with out.open() as handle:
        rows = list(csv.DictReader(handle))
    assert set(rows[0]) == {"source", "target", "head", "weight"}
    assert len(rows) == 2 * (K + 1)  # 2 heads x (k keys + the self-loop of GAT)
    totals = defaultdict(float)
    for row in rows:
        assert row["target"] == "2"
        totals[row["head"]] += float(row["weight"])
    assert set(totals) == {"0", "1"}
    assert all(total == pytest.approx(1.0, abs=1e-4) for total in totals.values())


def test_single_head_csv_has_one_row_per_incoming_edge(lookup_checkpoint, tmp_path):
    out = tmp_path / "one.csv"
    argv = ["attention", str(lookup_checkpoint), "--node", "0", "--head", "1"]
    assert run_cli([*argv, "--out", str(out)])[0] == 0  # .csv suffix picks the format
    assert len(out.read_text().strip().splitlines()) == 1 + K + 1


@pytest.mark.parametrize(
    ("extra", "word"),
    [
        (["--node", "99"], "--node"),
        (["--node", "0", "--layer", "3"], "--layer"),
        (["--node", "0", "--head", "5"], "--head"),
    ],
)
def test_bad_options_exit_with_status_2_naming_the_option(lookup_checkpoint, tmp_path, extra, word):
    out = tmp_path / "x.png"
    code, _, stderr = run_cli(["attention", str(lookup_checkpoint), *extra, "--out", str(out)])
    assert code == 2
    assert word in stderr


def test_missing_checkpoint_is_reported_without_a_traceback(tmp_path):
    code, _, stderr = run_cli(["attention", str(tmp_path / "none.pt"), "--node", "0"])
    assert code == 2 and "no checkpoint" in stderr


def test_cora_checkpoint_from_the_node_trainer_is_inspected(shared_data_dir, tmp_path):
    runs = tmp_path / "runs"
    argv = ["train", "--dataset", "cora", "--epochs", "1", "--quiet", "--threads", "1"]
    code, _, _ = run_cli([*argv, "--out", str(runs), "--data-dir", str(shared_data_dir)])
    assert code == 0
    checkpoint = next(runs.rglob("checkpoint.pt"))
    out = tmp_path / "cora.csv"
    argv = ["attention", str(checkpoint), "--node", "0", "--layer", "1", "--format", "csv"]
    code, stdout, _ = run_cli([*argv, "--out", str(out), "--data-dir", str(shared_data_dir)])
    assert code == 0
    rows = list(csv.DictReader(out.open()))
    assert rows and all(row["target"] == "0" for row in rows)
    assert sum(float(row["weight"]) for row in rows) == pytest.approx(1.0, abs=1e-4)
    assert "layers.0" in stdout and "layers.1" in stdout
