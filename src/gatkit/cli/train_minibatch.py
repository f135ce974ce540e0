"""``gatkit train --sampler neighbor``: mini-batch node classification on sampled blocks.

``gatkit train`` (:mod:`gatkit.cli.train`) calls :func:`add_sampler_arguments` on its
parser and hands ``--task node --sampler neighbor`` runs to :func:`run_node_sampled`.

Datasets: ``cora``, ``citeseer``, ``pubmed`` (Planetoid), ``ogbn-arxiv``, ``ogbn-products``
(:mod:`gatkit.data.ogb`) and ``random-<N>-<E>`` / ``random-arxiv`` (a random graph of that
size, :mod:`gatkit.data.random_node_graph`). Models: ``--recipe paper`` is the GAT paper's
two-layer classifier (:class:`gatkit.models.GAT`), ``--recipe arxiv`` the GATv2 paper's
ogbn-arxiv recipe (:class:`gatkit.models.residual_gat.ResidualGAT`: 3 layers, width 256,
residual, LayerNorm); the default is ``arxiv`` for ogbn-* datasets, else ``paper``.
Training runs a fixed number of epochs and keeps the weights of the best exact (layer-wise)
validation accuracy.

Under ``torchrun --nproc_per_node=N`` (``WORLD_SIZE > 1`` in the environment) the run is
data-parallel (:mod:`gatkit.train.distributed`); only rank 0 prints and writes files.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from gatkit.data.graph import Graph
from gatkit.errors import GatkitError

__all__ = ["add_sampler_arguments", "load_node_graph", "parse_fanouts", "run_node_sampled"]

RECIPES = ("paper", "arxiv")
#: Default fan-outs by depth (input layer first): 15 then 10, then 5 for deeper layers.
DEFAULT_FANOUTS = (15, 10, 5)
#: Epochs of a ``paper`` recipe run when ``--epochs`` is left out.
PAPER_EPOCHS = 100


class SamplerUsageError(GatkitError, ValueError):
    """A mini-batch option has a value the run cannot use."""


def parse_fanouts(text: str) -> list[int]:
    """``"15,10"`` -> ``[15, 10]``; each entry a positive int or -1 (every neighbour)."""
    try:
        values = [int(part) for part in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"--fanouts must be comma-separated ints such as 15,10, got {text!r}"
        ) from None
    if not values or any(v < 1 and v != -1 for v in values):
        raise argparse.ArgumentTypeError(
            f"--fanouts entries must be positive ints or -1, got {text!r}"
        )
    return values


def add_sampler_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the options of ``--sampler neighbor`` runs (options already defined are kept).

    Call it before options with the same names get other defaults: ``--batch-size`` is
    added with default ``None`` (meaning 1024 seeds here).
    """
    group = parser.add_argument_group("neighbour-sampled mini-batches (--sampler neighbor)")
    existing = parser._option_string_actions

    def option(*flags: str, **kwargs: Any) -> None:
        if not any(flag in existing for flag in flags):
            group.add_argument(*flags, **kwargs)

    option(
        "--fanouts",
        type=parse_fanouts,
        default=None,
        help=(
            "in-edges sampled per node and layer, input layer first, so the seeds get the "
            "last value (PyG's num_neighbors order reversed; default 15,10[,5])"
        ),
    )
    option("--batch-size", type=int, default=None, help="seed nodes per batch (default 1024)")
    option(
        "--eval-batch-size",
        type=int,
        default=4096,
        help="destination nodes per batch in the exact layer-wise evaluation",
    )
    option("--recipe", choices=RECIPES, default=None, help="model recipe (see module doc)")
    option("--backend", choices=("gloo", "nccl"), default=None, help="torch.distributed backend")
    option(
        "--verify-replicas",
        action="store_true",
        help="after training, report the largest parameter difference between processes",
    )


# ---------------------------------------------------------------------------- data
def load_node_graph(name: str, data_dir: str | None) -> Graph:
    """The node-classification graph called ``name`` (see module docstring)."""
    key = name.lower()
    if key in ("cora", "citeseer", "pubmed"):
        from gatkit.data.planetoid import load_planetoid

        return load_planetoid(key, root=data_dir, normalize_features=True)
    if key.startswith("ogbn-"):
        from gatkit.data.ogb import load_ogb_node

        return load_ogb_node(key, root=data_dir)
    if key.startswith("random-"):
        from gatkit.data.random_node_graph import ARXIV_SIZE, random_node_graph

        if key == "random-arxiv":
            return random_node_graph(*ARXIV_SIZE, name=key)
        parts = key.split("-")
        if len(parts) == 3 and parts[1].isdigit() and parts[2].isdigit():
            return random_node_graph(int(parts[1]), int(parts[2]), 32, 8, name=key)
    raise SamplerUsageError(
        f"unknown dataset {name!r} for --sampler neighbor; expected cora, citeseer, pubmed, "
        "ogbn-arxiv, ogbn-products, random-arxiv or random-<nodes>-<edges>"
    )


# ---------------------------------------------------------------------------- model
def _overrides(args: argparse.Namespace, names: dict[str, str]) -> dict[str, Any]:
    values = {}
    for option, field in names.items():
        value = getattr(args, option, None)
        if value is not None:
            values[field] = value
    return values


def build_model(args: argparse.Namespace, graph: Graph, recipe: str) -> torch.nn.Module:
    """The classifier of ``recipe`` for ``graph``, with the command line's overrides."""
    try:
        if recipe == "arxiv":
            from gatkit.models.residual_gat import ResidualGAT, ResidualGATConfig

            overrides = _overrides(
                args,
                {"lr": "lr", "weight_decay": "weight_decay", "heads": "heads",
                 "dropout": "dropout", "hidden": "hidden_channels", "layers": "num_layers"},
            )  # fmt: skip
            config = ResidualGATConfig(operator=args.model, **overrides)
            return ResidualGAT(graph.num_features, graph.num_classes, config)
        from gatkit.models import GAT, GATConfig

        overrides = _overrides(
            args,
            {"lr": "lr", "weight_decay": "weight_decay", "heads": "heads",
             "hidden": "hidden_channels", "layers": "num_layers"},
        )  # fmt: skip
        if getattr(args, "dropout", None) is not None:
            overrides.update(dropout=args.dropout, attention_dropout=args.dropout)
        if getattr(args, "dropout_placement", None) is not None:
            overrides.update(dropout_placement=args.dropout_placement)
        config = GATConfig.for_dataset(graph.name, args.model, **overrides)
        return GAT(graph.num_features, graph.num_classes, config)
    except ValueError as error:
        raise SamplerUsageError(f"invalid model option: {error}") from error


# ---------------------------------------------------------------------------- runner
def _default_threads(local_world_size: int) -> int:
    return max(1, (os.cpu_count() or 1) // max(local_world_size, 1))


def run_node_sampled(args: argparse.Namespace) -> int:
    """Mini-batch training on sampled blocks, one run per seed; prints a summary."""
    from gatkit.models.layer_steps import model_num_layers
    from gatkit.train.distributed import (
        init_distributed,
        launched_by_torchrun,
        replica_max_difference,
        shutdown_distributed,
    )
    from gatkit.train.minibatch import MiniBatchNodeTrainer
    from gatkit.train.seeding import seed_everything

    batch_size = args.batch_size if args.batch_size is not None else 1024
    for option, value in (
        ("--batch-size", batch_size),
        ("--eval-batch-size", args.eval_batch_size),
    ):
        if value < 1:
            raise SamplerUsageError(f"{option} must be a positive integer, got {value}")
    if launched_by_torchrun() and args.threads is None:
        torch.set_num_threads(_default_threads(int(os.environ.get("LOCAL_WORLD_SIZE", "1"))))
    ctx = init_distributed(backend=args.backend, device=args.device)
    succeeded = False
    try:
        graph = load_node_graph(args.dataset, args.data_dir)
        recipe = args.recipe or ("arxiv" if graph.name.startswith("ogbn-") else "paper")
        seeds = list(range(args.first_seed, args.first_seed + args.seeds))
        out_dir = Path(args.out) / f"{graph.name}-{args.model}-neighbor"
        results, replica_diffs = [], []
        start = time.perf_counter()
        for seed in seeds:
            seed_everything(seed)
            model = build_model(args, graph, recipe).to(ctx.device)
            layers = model_num_layers(model)
            fanouts = args.fanouts or [
                DEFAULT_FANOUTS[min(i, len(DEFAULT_FANOUTS) - 1)] for i in range(layers)
            ]
            if len(fanouts) != layers:
                raise SamplerUsageError(
                    f"--fanouts must give one value per layer ({layers}), got {fanouts}"
                )
            epochs = args.epochs or getattr(model.config, "epochs", PAPER_EPOCHS)
            run_dir = out_dir / f"seed-{seed}"
            trainer = MiniBatchNodeTrainer(
                model,
                graph,
                fanouts=fanouts,
                batch_size=batch_size,
                epochs=epochs,
                seed=seed,
                eval_batch_size=args.eval_batch_size,
                checkpoint_path=run_dir / "checkpoint.pt",
                metrics_path=run_dir / "metrics.jsonl",
                metadata={"dataset": graph.name, "recipe": recipe},
                device=ctx.device,
            )
            result = trainer.fit()
            results.append(result)
            if args.verify_replicas:
                replica_diffs.append(replica_max_difference(model))
            if ctx.is_main and not args.quiet and not args.json:
                print(
                    f"seed {seed}: test accuracy {100 * result.test_accuracy:.1f}% (kept epoch "
                    f"{result.best_epoch} of {result.epochs}, {result.seconds_per_epoch:.2f} "
                    f"s/epoch on {ctx.world_size} process(es))",
                    file=sys.stderr,
                )
        accuracies = np.array([r.test_accuracy for r in results])
        summary: dict[str, Any] = {
            "dataset": graph.name,
            "model": args.model,
            "recipe": recipe,
            "task": "node",
            "sampler": "neighbor",
            "fanouts": fanouts,
            "batch_size": batch_size,
            "seeds": seeds,
            "test_accuracy_mean": float(accuracies.mean()),
            "test_accuracy_std": float(accuracies.std()),
            "test_accuracies": accuracies.tolist(),
            "seconds_per_epoch": float(np.mean([r.seconds_per_epoch for r in results])),
            "eval_seconds": float(np.mean([r.eval_seconds for r in results])),
            "epochs": [r.epochs for r in results],
            "best_epochs": [r.best_epoch for r in results],
            "final_train_losses": [r.final_train_loss for r in results],
            "world_size": ctx.world_size,
            "backend": ctx.backend,
            "torch_threads": torch.get_num_threads(),
            "seconds": time.perf_counter() - start,
            "config": model.config.to_dict(),
        }
        if args.verify_replicas:
            summary["replica_max_abs_diff"] = max(replica_diffs)
        if ctx.is_main:
            out_dir.mkdir(parents=True, exist_ok=True)
            temp = out_dir / ".summary.json.tmp"
            temp.write_text(json.dumps(summary, indent=2) + "\n")
            os.replace(temp, out_dir / "summary.json")
            _print_summary(summary, args.json)
        succeeded = True
    finally:
        shutdown_distributed(barrier=succeeded)
    return 0


def _print_summary(summary: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print(json.dumps(summary))
        return
    n = len(summary["seeds"])
    print(
        f"{summary['model']} ({summary['recipe']} recipe, neighbour sampling "
        f"{','.join(map(str, summary['fanouts']))}) on {summary['dataset']}: test accuracy "
        f"{100 * summary['test_accuracy_mean']:.1f} ± {100 * summary['test_accuracy_std']:.1f} % "
        f"over {n} seed{'s' if n != 1 else ''}"
    )
    print(
        f"{summary['seconds_per_epoch']:.2f} s per training epoch on {summary['world_size']} "
        f"process(es); {summary['eval_seconds']:.2f} s per exact evaluation"
    )
