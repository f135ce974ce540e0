"""Full-batch against neighbour-sampled training on the ogbn-arxiv-sized random graph.

One command (from the repository root)::

    .venv/bin/python benchmarks/scale_training.py     # writes results/scale/training.json

Model (both modes): the GAT paper's two-layer GATv2 classifier (8 heads x 8 hidden, ELU,
1 output head; dropout 0.6, one input mask per layer) on the random graph of ogbn-arxiv's
size (169,343 nodes, 1,166,243 edges, 128 features, 40 classes). Each mode runs in a fresh
subprocess, so its peak resident memory (``ru_maxrss``) is its own:

- ``full``: one epoch = one Adam step on the whole graph (forward, loss on the training
  nodes, backward), then one full-graph evaluation forward;
- ``sampled``: one epoch = every training node once in batches of 1,024 seeds with
  fan-outs 15,10 (:class:`gatkit.train.minibatch.MiniBatchNodeTrainer`), then one exact
  layer-wise evaluation (batches of 4,096 destination nodes).

Then the data-parallel speed-up of the sampled epoch: ``gatkit train --sampler neighbor``
under ``torchrun`` with 1 process x 1 thread, 1 process x 2 threads, and 2 processes x 1
thread (gloo). Reported per mode: seconds per training epoch, seconds per evaluation, peak
RSS and its increase over the RSS after setup (graph, model, optimiser).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch import nn

from gatkit.data.random_node_graph import ARXIV_SIZE, random_node_graph
from gatkit.models import GAT, GATConfig


def _rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def run_mode(mode: str, epochs: int, threads: int) -> dict:
    """Train ``epochs`` epochs in this process; return timings and peak memory."""
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    graph = random_node_graph(*ARXIV_SIZE, seed=0)
    # One input mask per layer: the per-head placement would hold K = 8 dropped copies of
    # the dense 128-wide features ([8, N, 128]) in the full-batch mode.
    config = GATConfig(operator="gatv2", dropout_placement="shared")
    model = GAT(graph.num_features, graph.num_classes, config)
    train_seconds, eval_seconds = [], []
    if mode == "full":
        optimizer = torch.optim.Adam(model.parameters(), lr=0.005, weight_decay=5e-4)
        setup_rss = _rss_mib()
        for _ in range(epochs):
            start = time.perf_counter()
            model.train()
            optimizer.zero_grad(set_to_none=True)
            logits = model(graph.x, graph.edge_index)
            loss = nn.functional.cross_entropy(logits[graph.train_mask], graph.y[graph.train_mask])
            loss.backward()
            optimizer.step()
            del logits, loss
            train_seconds.append(time.perf_counter() - start)
            start = time.perf_counter()
            model.eval()
            with torch.no_grad():
                model(graph.x, graph.edge_index)
            eval_seconds.append(time.perf_counter() - start)
    else:
        from gatkit.train.minibatch import MiniBatchNodeTrainer

        trainer = MiniBatchNodeTrainer(
            model, graph, fanouts=[15, 10], batch_size=1024, epochs=epochs, lr=0.005
        )
        setup_rss = _rss_mib()
        for _ in range(epochs):
            train_seconds.append(trainer.train_epoch()["seconds"])
            start = time.perf_counter()
            trainer.evaluate()
            eval_seconds.append(time.perf_counter() - start)
    peak = _rss_mib()
    return {
        "mode": mode,
        "epochs": epochs,
        "torch_threads": torch.get_num_threads(),
        "train_seconds_per_epoch": train_seconds,
        "eval_seconds": eval_seconds,
        "setup_rss_mib": setup_rss,
        "peak_rss_mib": peak,
        "peak_increase_mib": peak - setup_rss,
    }


def _subprocess_mode(mode: str, epochs: int, threads: int) -> dict:
    command = [sys.executable, __file__, "--child", mode, "--epochs", str(epochs),
               "--threads", str(threads)]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, check=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


def _torchrun(nproc: int, threads: int, epochs: int) -> dict:
    with tempfile.TemporaryDirectory() as out:
        command = [
            sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={nproc}",
            "--master_addr=127.0.0.1", "--master_port=29533",
            "-m", "gatkit.cli.main", "train", "--sampler", "neighbor",
            "--dataset", "random-arxiv", "--model", "gatv2", "--fanouts", "15,10",
            "--batch-size", "1024", "--epochs", str(epochs), "--threads", str(threads),
            "--out", out, "--json", "--verify-replicas", "--dropout-placement", "shared",
        ]  # fmt: skip
        env = dict(os.environ, OMP_NUM_THREADS=str(threads))
        result = subprocess.run(command, capture_output=True, text=True, check=True, env=env)
    summary = json.loads([ln for ln in result.stdout.splitlines() if ln.startswith("{")][0])
    return {
        "processes": nproc,
        "threads_per_process": threads,
        "train_seconds_per_epoch": summary["seconds_per_epoch"],
        "replica_max_abs_diff": summary["replica_max_abs_diff"],
        "final_train_loss": summary["final_train_losses"][0],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--child", choices=("full", "sampled"), default=None)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--skip-ddp", action="store_true")
    parser.add_argument("--out", default="results/scale/training.json")
    args = parser.parse_args()
    if args.child is not None:
        print(json.dumps(run_mode(args.child, args.epochs, args.threads)))
        return
    result: dict = {
        "graph": dict(zip(("nodes", "edges", "features", "classes"), ARXIV_SIZE, strict=True)),
        "model": "GAT-paper 2-layer GATv2 (8 heads x 8, 1 output head), dropout 0.6 (shared)",
        "modes": [_subprocess_mode(m, args.epochs, args.threads) for m in ("full", "sampled")],
    }
    if not args.skip_ddp:
        result["data_parallel"] = [
            _torchrun(1, 1, 1),
            _torchrun(1, 2, 1),
            _torchrun(2, 1, 1),
        ]
        base = result["data_parallel"][0]["train_seconds_per_epoch"]
        for row in result["data_parallel"]:
            row["speed_up_vs_1x1"] = base / row["train_seconds_per_epoch"]
    result["load_average_at_end"] = list(os.getloadavg())
    result["torch_version"] = torch.__version__
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
