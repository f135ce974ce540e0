"""``gatkit train``: train a GAT or GATv2 over several seeds and print the test accuracy.

Every run is chosen by :func:`select_runner` from the task (``--task``), the sampler
(``--sampler``) and the dataset: that function is the one place to extend when a new task
(graph classification) or sampler (mini-batch) is added. A runner takes the parsed arguments
prints its result (``--json``: one JSON object) and returns the exit status. The graph
task's options and runner live in :mod:`gatkit.cli.train_graph`.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from gatkit.cli.train_graph import add_graph_arguments, run_graph_task
from gatkit.cli.train_minibatch import add_sampler_arguments, run_node_sampled
from gatkit.errors import GatkitError

Runner = Callable[[argparse.Namespace], int]

#: Datasets of the node task (the graph task's loader, :func:`gatkit.data.tu.load_tu`,
#: checks its own names).
NODE_DATASETS = ("cora", "citeseer", "pubmed")
#: Samplers each task supports (``full``: the whole graph in every step).
TASK_SAMPLERS: dict[str, tuple[str, ...]] = {
    "node": ("full", "neighbor"),
    "graph": ("full",),
}
#: Dataset used when ``--dataset`` is left out (the node task has none: it must be named).
TASK_DEFAULT_DATASET: dict[str, str] = {"graph": "MUTAG"}
MODELS = ("gat", "gatv2")


class UsageError(GatkitError, ValueError):
    """A command-line option has a value the command cannot use."""


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``train`` sub-command."""
    parser = subparsers.add_parser(
        "train",
        help="train GAT/GATv2 over several seeds and report the test accuracy",
        description=(
            "Train a two-layer GAT or GATv2 with the GAT paper's protocol (Velickovic et al., "
            "ICLR 2018: Adam, L2, dropout 0.6, early stopping with patience 100 on validation "
            "loss or accuracy) once per seed, and print the test accuracy of the kept models "
            "as mean ± std together with the seconds per epoch."
        ),
    )
    parser.add_argument(
        "--dataset",
        default=None,
        help=f"dataset name (node task: {', '.join(NODE_DATASETS)}; graph task: a TU dataset)",
    )
    parser.add_argument("--model", choices=MODELS, default="gat", help="attention operator")
    parser.add_argument(
        "--task",
        choices=sorted(TASK_SAMPLERS),
        default="node",
        help="node classification (Planetoid) or graph classification (TU, 10-fold CV)",
    )
    parser.add_argument(
        "--sampler",
        default="full",
        help="how batches are formed (node task: full = whole graph per step)",
    )
    parser.add_argument("--seeds", type=int, default=1, help="number of seeds (runs)")
    parser.add_argument("--first-seed", type=int, default=0, help="seed of the first run")
    parser.add_argument(
        "--epochs", type=int, default=None, help="cap on epochs (default: early stopping decides)"
    )
    parser.add_argument(
        "--patience", type=int, default=None, help="early-stopping patience (default: 100)"
    )
    parser.add_argument(
        "--dropout-placement",
        choices=("per_head", "shared"),
        default="per_head",
        help=(
            "node task: per_head = the GAT authors' code (one input mask per head, messages "
            "W h_j dropped too; default); shared = one input mask per layer, as PyG's examples"
        ),
    )
    parser.add_argument(
        "--stopping",
        choices=("gat", "min-val-loss"),
        default="gat",
        help=(
            "node task: gat = the GAT authors' early stopping (patience on validation loss or "
            "accuracy; default); min-val-loss = PyG's citation benchmark (keep the epoch of "
            "least validation loss, stop after half of --epochs, default 1000, once the loss "
            "exceeds its mean over the previous --patience epochs)"
        ),
    )
    parser.add_argument(
        "--data-dir", default=None, help="dataset root (default: $GATKIT_DATA, ~/.cache/gatkit)"
    )
    parser.add_argument(
        "--out",
        default="runs",
        help="folder for checkpoints, metrics and summary (default: runs)",
    )
    parser.add_argument(
        "--checkpoint-every", type=int, default=50, help="epochs between checkpoints"
    )
    parser.add_argument(
        "--resume", action="store_true", help="continue interrupted runs from their checkpoints"
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object instead")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.add_argument(
        "--deterministic",
        action="store_true",
        help="use deterministic kernels (torch.use_deterministic_algorithms)",
    )
    parser.add_argument(
        "--threads", type=int, default=None, help="torch CPU threads (per job with --jobs)"
    )
    parser.add_argument(
        "--masks",
        choices=("philox", "torch"),  # gatkit.ops.masks.GENERATORS (--help imports no torch)
        default=None,
        help="dropout-mask generator: philox (default; parallel, on the CPU) or torch "
        "(F.dropout's masks); also GATKIT_MASKS",
    )
    parser.add_argument(
        "--keep-freed-memory",
        action="store_true",
        help="keep freed host memory for reuse (glibc): large graphs stop page-faulting "
        "their tensors at every step; the process keeps its peak size",
    )
    parser.add_argument(
        "--huge-pages",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="back CPU tensors of 32 MiB or more with transparent huge pages (gatkit's "
        "allocator, gatkit.train.use_huge_pages; holds no memory; default on where Linux "
        "allows it; off with --keep-freed-memory)",
    )
    parser.add_argument(
        "--jobs", type=int, default=1, help="seeds trained in parallel worker processes"
    )
    parser.add_argument("--device", default="cpu", help="torch device (default: cpu)")
    add_sampler_arguments(parser)  # --sampler neighbor options (--batch-size default None)
    add_graph_arguments(parser)  # --task graph options; those already defined are kept
    parser.set_defaults(run=run)


# ---------------------------------------------------------------------------- dispatch
def select_runner(args: argparse.Namespace) -> Runner:
    """Pick the runner for (task, sampler, dataset), refusing unknown combinations.

    This is the only dispatch point: a new task or sampler adds its name to
    :data:`TASK_SAMPLERS` (and, if it has one, its default dataset to
    :data:`TASK_DEFAULT_DATASET`) and a branch here that returns its runner.
    """
    task, sampler = args.task, args.sampler
    samplers = TASK_SAMPLERS.get(task, ())
    if sampler not in samplers:
        raise UsageError(
            f"unknown --sampler {sampler!r} for --task {task}; expected one of "
            f"{', '.join(samplers)}"
        )
    if args.dataset is None:
        if task not in TASK_DEFAULT_DATASET:
            raise UsageError(f"--dataset is required for --task {task}")
        args.dataset = TASK_DEFAULT_DATASET[task]
    if task == "node" and sampler == "neighbor":
        return run_node_sampled  # checks its own dataset names
    if task == "node":
        if args.dataset.lower() not in NODE_DATASETS:
            raise UsageError(
                f"unknown dataset {args.dataset!r} for --task node; expected one of "
                f"{', '.join(NODE_DATASETS)}"
            )
        return run_node_full_batch
    if task == "graph":
        args.no_progress = bool(getattr(args, "no_progress", False) or args.quiet)
        return run_graph_task
    raise UsageError(f"no runner for --task {task} --sampler {sampler}")  # pragma: no cover


def check_common_arguments(args: argparse.Namespace) -> None:
    """Refuse impossible numbers before any data is loaded."""
    for name in ("seeds", "epochs", "patience", "threads", "checkpoint_every", "jobs"):
        value = getattr(args, name)
        if value is not None and value < 1:
            option = "--" + name.replace("_", "-")
            raise UsageError(f"{option} must be a positive integer, got {value}")
    if args.first_seed < 0:
        raise UsageError(f"--first-seed must be >= 0, got {args.first_seed}")


# ---------------------------------------------------------------------------- runners
def load_node_dataset(name: str, data_dir: str | None):
    """The Planetoid graph ``name`` with the GAT preprocessing (row-normalised features)."""
    from gatkit.data.planetoid import load_planetoid

    return load_planetoid(name, root=data_dir, normalize_features=True)


def run_node_full_batch(args: argparse.Namespace) -> int:
    """Full-batch node classification on a Planetoid graph with the GAT protocol."""
    from gatkit.models import GATConfig
    from gatkit.train import run_node_experiment

    dataset = args.dataset.lower()
    overrides = {"patience": args.patience} if args.patience is not None else {}
    overrides["dropout_placement"] = args.dropout_placement
    overrides["stopping"] = args.stopping
    if args.stopping == "min-val-loss":
        overrides["max_epochs"] = 1000  # PyG's benchmark; --epochs still caps it
    config = GATConfig.for_dataset(dataset, args.model, **overrides)
    graph = load_node_dataset(dataset, args.data_dir)
    seeds = list(range(args.first_seed, args.first_seed + args.seeds))
    suffix = "" if args.dropout_placement == "per_head" else f"-{args.dropout_placement}"
    suffix += "" if args.stopping == "gat" else f"-{args.stopping}"
    out_dir = Path(args.out) / f"{dataset}-{args.model}{suffix}"
    progress = not args.quiet and not args.json

    def report(result) -> None:
        if progress:
            print(
                f"seed {result.seed}: test accuracy {100 * result.test_accuracy:.1f}% "
                f"(kept epoch {result.best_epoch} of {result.epochs}, "
                f"{result.seconds_per_epoch:.4f} s/epoch)",
                file=sys.stderr,
            )

    summary = run_node_experiment(
        graph,
        config,
        seeds,
        out_dir=out_dir,
        resume=args.resume,
        max_epochs=args.epochs,
        checkpoint_every=args.checkpoint_every,
        progress=progress,
        device=args.device,
        jobs=args.jobs,
        on_seed_end=report,
    )
    print_summary(summary, args.json)
    return 0


# ---------------------------------------------------------------------------- output
def print_summary(summary: dict[str, Any], as_json: bool) -> None:
    """One JSON object, or two human-readable lines (accuracy in percent)."""
    if as_json:
        print(json.dumps(summary))
        return
    n = len(summary["seeds"])
    model = {"gat": "GAT", "gatv2": "GATv2"}.get(summary["model"], summary["model"])
    epochs = summary["epochs"]
    print(
        f"{model} on {summary['dataset']}: test accuracy "
        f"{100 * summary['test_accuracy_mean']:.1f} ± {100 * summary['test_accuracy_std']:.1f} % "
        f"over {n} seed{'s' if n != 1 else ''}"
    )
    print(
        f"{summary['seconds_per_epoch']:.4f} s per epoch "
        f"({summary['cpu_seconds_per_epoch']:.4f} s CPU); "
        f"{sum(epochs) / len(epochs):.0f} epochs per run on average"
    )


def run(args: argparse.Namespace) -> int:
    """Entry point of ``gatkit train``."""
    check_common_arguments(args)
    runner = select_runner(args)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    if args.deterministic:
        from gatkit.train import set_deterministic

        set_deterministic(True)
    if args.keep_freed_memory:
        from gatkit.train import keep_freed_memory

        if not keep_freed_memory():
            print("gatkit: --keep-freed-memory has no effect here (not glibc)", file=sys.stderr)
    if args.huge_pages and args.device == "cpu":
        from gatkit.ops.fused_cpu import announce_once
        from gatkit.train import use_huge_pages

        if use_huge_pages():
            announce_once("CPU tensors of 32 MiB or more get transparent huge pages")
    if args.masks is not None:
        from gatkit.ops import set_mask_generator

        set_mask_generator(args.masks)
    if args.device != "cpu" and not _device_available(args.device):
        raise UsageError(f"--device {args.device!r} is not available on this machine")
    return runner(args)


def _device_available(device: str) -> bool:
    try:
        torch.empty(0, device=device)
    except (RuntimeError, AssertionError):
        return False
    return True
