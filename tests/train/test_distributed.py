"""Data-parallel training: 2 processes (torchrun, gloo on localhost) stay in sync and learn."""

from __future__ import annotations

import json
import socket
import subprocess
import sys

import pytest


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_two_processes_keep_identical_parameters_and_lower_the_loss(tmp_path):
    command = [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2",
        "--master_addr=127.0.0.1", f"--master_port={_free_port()}",
        "-m", "gatkit.cli.main", "train", "--sampler", "neighbor",
        "--dataset", "random-600-4000", "--fanouts", "5,5", "--batch-size", "64",
        "--epochs", "4", "--lr", "0.01", "--dropout", "0.1", "--backend", "gloo",
        "--out", str(tmp_path), "--verify-replicas", "--json",
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    summaries = [line for line in result.stdout.splitlines() if line.startswith("{")]
    assert len(summaries) == 1, "only rank 0 prints the summary"
    summary = json.loads(summaries[0])
    assert summary["world_size"] == 2 and summary["backend"] == "gloo"
    assert summary["replica_max_abs_diff"] == 0.0
    run_dir = tmp_path / "random-600-4000-gat-neighbor" / "seed-0"
    losses = [json.loads(line)["train_loss"] for line in (run_dir / "metrics.jsonl").open()]
    assert len(losses) == 4 and losses[-1] < 0.8 * losses[0]
    # Rank 0 alone wrote the checkpoint, atomically: no temporary files are left.
    assert sorted(p.name for p in run_dir.iterdir()) == ["checkpoint.pt", "metrics.jsonl"]
