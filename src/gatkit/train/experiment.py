"""Repeat a node-classification training over several seeds and summarise it.

For each seed ``s``: seed every generator with ``s``, build a fresh :class:`GAT` (so the
initial weights depend on ``s`` only), train it with :class:`NodeTrainer` and record the
kept model's test accuracy. The summary reports the mean and the population standard
deviation (``ddof=0``) of the test accuracies, and the mean seconds per epoch.

Files, when ``out_dir`` is given: ``<out_dir>/seed-<s>/checkpoint.pt`` and
``<out_dir>/seed-<s>/metrics.jsonl`` per seed, ``<out_dir>/summary.json`` at the end.
"""

from __future__ import annotations

import json
import multiprocessing
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import torch

import gatkit
from gatkit.data.graph import Graph
from gatkit.models import GAT, GATConfig
from gatkit.ops.masks import get_mask_generator, set_mask_generator
from gatkit.train.allocator import (
    freed_memory_is_kept,
    huge_page_stats,
    huge_pages_in_use,
    keep_freed_memory,
    use_huge_pages,
)
from gatkit.train.node_trainer import NodeTrainer, NodeTrainResult
from gatkit.train.seeding import seed_everything, set_deterministic


def train_one_seed(
    graph: Graph,
    config: GATConfig,
    seed: int,
    out_dir: Path | None,
    resume: bool,
    max_epochs: int | None,
    checkpoint_every: int,
    progress: bool,
    device: str | torch.device,
) -> NodeTrainResult:
    """Seed every generator with ``seed``, build a fresh GAT and train it on ``graph``."""
    seed_everything(seed)
    model = GAT(graph.num_features, graph.num_classes, config).to(device)
    run_dir = out_dir / f"seed-{seed}" if out_dir is not None else None
    trainer = NodeTrainer(
        model,
        graph,
        seed=seed,
        max_epochs=max_epochs,
        checkpoint_path=run_dir / "checkpoint.pt" if run_dir else None,
        checkpoint_every=checkpoint_every,
        metrics_path=run_dir / "metrics.jsonl" if run_dir else None,
        progress=progress,
        metadata={"dataset": graph.name},
    )
    return trainer.fit(resume=resume)


def _worker_setup(
    threads: int,
    deterministic: bool,
    mask_generator: str,
    keep_memory: bool,
    huge_bytes: int | None,
) -> None:
    torch.set_num_threads(threads)
    set_mask_generator(mask_generator)
    if keep_memory:
        keep_freed_memory()
    if huge_bytes is not None:  # the parent's min_bytes (0 is a valid one)
        use_huge_pages(huge_bytes)
    if deterministic:
        set_deterministic(True)


def _huge_page_threshold() -> int | None:
    """The min_bytes of gatkit's huge-page allocator if it is in place, else ``None``."""
    stats = huge_page_stats()
    return int(stats["min_bytes"]) if stats["in_use"] else None


def run_node_experiment(
    graph: Graph,
    config: GATConfig,
    seeds: Sequence[int],
    *,
    out_dir: str | os.PathLike[str] | None = None,
    resume: bool = False,
    max_epochs: int | None = None,
    checkpoint_every: int = 50,
    progress: bool = False,
    device: str | torch.device = "cpu",
    jobs: int = 1,
    on_seed_end: Callable[[NodeTrainResult], None] | None = None,
) -> dict[str, Any]:
    """Train one model per seed on ``graph``; return a JSON-ready summary.

    With ``jobs > 1`` the seeds run in that many worker processes (``spawn``), each with the
    parent's torch thread count, deterministic setting, mask generator and allocator policy
    (:func:`gatkit.train.keep_freed_memory`, :func:`gatkit.train.use_huge_pages`); every
    seed's result is the same as in a sequential run, because each run depends on its seed only.

    Keys of the summary: ``dataset``, ``model``, ``seeds``, ``test_accuracies``,
    ``test_accuracy_mean``, ``test_accuracy_std`` (fractions in [0, 1]),
    ``seconds_per_epoch`` (wall clock), ``cpu_seconds_per_epoch`` (process CPU time, less
    sensitive to other load on the machine), ``epochs`` (per seed), ``best_epochs``, ``runs`` (every
    :class:`NodeTrainResult`), ``config`` and version information.
    """
    if len(seeds) == 0:
        raise ValueError("seeds must name at least one seed, got an empty sequence")
    if not isinstance(jobs, int) or jobs < 1:
        raise ValueError(f"jobs must be a positive int, got {jobs!r}")
    out = Path(out_dir) if out_dir is not None else None
    graph = graph.to(device)
    common = (resume, max_epochs, checkpoint_every)
    results: list[NodeTrainResult] = []
    if jobs == 1 or len(seeds) == 1:
        for seed in seeds:
            result = train_one_seed(graph, config, seed, out, *common, progress, device)
            results.append(result)
            if on_seed_end is not None:
                on_seed_end(result)
    else:
        context = multiprocessing.get_context("spawn")
        setup = (
            torch.get_num_threads(),
            torch.are_deterministic_algorithms_enabled(),
            get_mask_generator(),
            freed_memory_is_kept(),
            _huge_page_threshold(),
        )
        with ProcessPoolExecutor(
            max_workers=min(jobs, len(seeds)),
            mp_context=context,
            initializer=_worker_setup,
            initargs=setup,
        ) as pool:
            futures = [
                pool.submit(train_one_seed, graph, config, seed, out, *common, False, device)
                for seed in seeds
            ]
            for future in futures:
                result = future.result()
                results.append(result)
                if on_seed_end is not None:
                    on_seed_end(result)
    accuracies = np.array([r.test_accuracy for r in results])
    summary = {
        "dataset": graph.name,
        "model": config.operator,
        "task": "node",
        "seeds": list(seeds),
        "test_accuracy_mean": float(accuracies.mean()),
        "test_accuracy_std": float(accuracies.std()),
        "test_accuracies": accuracies.tolist(),
        "seconds_per_epoch": float(np.mean([r.seconds_per_epoch for r in results])),
        "cpu_seconds_per_epoch": float(np.mean([r.cpu_seconds_per_epoch for r in results])),
        "epochs": [r.epochs for r in results],
        "best_epochs": [r.best_epoch for r in results],
        "max_epochs": max_epochs if max_epochs is not None else config.max_epochs,
        "config": config.to_dict(),
        "runs": [r.to_dict() for r in results],
        "torch_threads": torch.get_num_threads(),
        "jobs": jobs,
        "deterministic": torch.are_deterministic_algorithms_enabled(),
        "mask_generator": get_mask_generator(),
        "keep_freed_memory": freed_memory_is_kept(),
        "huge_pages": huge_pages_in_use(),
        "device": str(device),
        "gatkit_version": gatkit.__version__,
        "torch_version": torch.__version__,
    }
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary
