"""``gatkit train --task graph``: graph classification on a TU dataset with 10-fold CV.

``gatkit train`` (:mod:`gatkit.cli.train`) calls :func:`add_graph_arguments` on its parser
and hands ``--task graph`` runs to :func:`run_graph_task`. The protocol is the one of
:mod:`gatkit.train.graph_classification`; ``--json`` prints one JSON object with
``test_accuracy_mean``, ``test_accuracy_std``, ``fold_accuracies``, ``config`` and
``seconds``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from gatkit.data.tu import load_tu
from gatkit.errors import GatkitError
from gatkit.models.graph_classifier import POOLINGS, GraphClassifierConfig
from gatkit.train.graph_classification import CrossValidationConfig, FoldResult, cross_validate

__all__ = ["add_graph_arguments", "run_graph_task"]


def add_graph_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the options of graph-level tasks (those the node task already has are kept)."""
    defaults = CrossValidationConfig()
    group = parser.add_argument_group(
        "graph classification (--task graph)",
        "GATv2 layers with embedded edge labels, a global readout and an MLP, evaluated by "
        "stratified K-fold CV with a 10% hold-out per training fold for early stopping "
        "(--model is ignored; --first-seed seeds folds, initialisation and batches).",
    )
    add = group.add_argument
    existing = parser._option_string_actions

    def option(*flags: str, **kwargs: Any) -> None:
        if not any(flag in existing for flag in flags):
            add(*flags, **kwargs)

    option("--dataset", default="MUTAG", help="TU dataset name (MUTAG, PROTEINS, ...)")
    option("--data-dir", default=None, help="dataset root (default $GATKIT_DATA)")
    option("--json", action="store_true", help="print one JSON object with the results")
    option("--epochs", type=int, default=None, help="maximum epochs per fold")
    if "--first-seed" not in existing:  # `gatkit train` seeds every task with --first-seed
        option("--seed", type=int, default=None, help="random seed (folds, init, batches)")
    option("--lr", type=float, default=None, help="Adam learning rate")
    option("--weight-decay", type=float, default=None, help="Adam L2 coefficient")
    option("--patience", type=int, default=None, help="early-stopping patience in epochs")
    option("--heads", type=int, default=None, help="attention heads per layer")
    option("--dropout", type=float, default=None, help="dropout on layer inputs and in the MLP")
    option("--output", default=None, help="also write the JSON result to this file")
    option("--folds", type=int, default=defaults.folds, help="outer CV folds (default 10)")
    option("--batch-size", type=int, default=defaults.batch_size, help="graphs per batch")
    option("--layers", type=int, default=None, help="number of GATv2 layers")
    option("--hidden", type=int, default=None, help="layer width (all heads together)")
    option(
        "--pooling",
        choices=POOLINGS,
        default="attention",
        help="graph readout (default: global attention pooling)",
    )
    option(
        "--no-edge-features",
        action="store_true",
        help="ignore edge labels (ablation: attention without edge features)",
    )
    option(
        "--only-folds",
        type=int,
        nargs="+",
        default=None,
        help="run only these outer folds (smoke tests; the partition stays the K-fold one)",
    )
    option("--no-progress", action="store_true", help="hide the progress bar")


def _value(args: argparse.Namespace, name: str, default: Any) -> Any:
    value = getattr(args, name, None)
    return default if value is None else value


def _build_configs(args: argparse.Namespace, dataset) -> tuple[GraphClassifierConfig, Any]:
    model_defaults = GraphClassifierConfig(in_channels=1, num_classes=2)
    cv_defaults = CrossValidationConfig()
    try:
        model_config = GraphClassifierConfig(
            in_channels=dataset.num_features,
            num_classes=dataset.num_classes,
            num_edge_labels=dataset.num_edge_labels,
            edge_features=not getattr(args, "no_edge_features", False),
            pooling=_value(args, "pooling", model_defaults.pooling),
            hidden_channels=_value(args, "hidden", model_defaults.hidden_channels),
            heads=_value(args, "heads", model_defaults.heads),
            num_layers=_value(args, "layers", model_defaults.num_layers),
            dropout=_value(args, "dropout", model_defaults.dropout),
        )
        cv_config = CrossValidationConfig(
            folds=_value(args, "folds", cv_defaults.folds),
            max_epochs=_value(args, "epochs", cv_defaults.max_epochs),
            patience=_value(args, "patience", cv_defaults.patience),
            batch_size=_value(args, "batch_size", cv_defaults.batch_size),
            lr=_value(args, "lr", cv_defaults.lr),
            weight_decay=_value(args, "weight_decay", cv_defaults.weight_decay),
            seed=_value(args, "seed", _value(args, "first_seed", cv_defaults.seed)),
        )
    except ValueError as error:
        raise GatkitError(f"invalid option: {error}") from error
    return model_config, cv_config


def _write_json_atomic(path: Path, payload: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    with os.fdopen(handle, "w") as out:
        json.dump(payload, out, indent=2)
        out.write("\n")
    os.replace(tmp, path)


def run_graph_task(args: argparse.Namespace) -> int:
    """Load the TU dataset, run stratified K-fold CV, print (or ``--json``) the results."""
    start = time.perf_counter()
    device = getattr(args, "device", None) or "cpu"
    dataset = load_tu(args.dataset, root=getattr(args, "data_dir", None))
    model_config, cv_config = _build_configs(args, dataset)
    quiet = bool(getattr(args, "json", False))
    if not quiet:
        print(f"{dataset}")
        print(f"model: {model_config}")
        print(f"protocol: {cv_config}")

    def report(fold: FoldResult) -> None:
        if not quiet:
            print(
                f"fold {fold.fold:2d}: test acc {fold.test_accuracy:.4f}  (kept epoch "
                f"{fold.best_epoch}/{fold.epochs_run}, hold-out acc {fold.holdout_accuracy:.4f}, "
                f"train/hold-out/test {fold.train_size}/{fold.holdout_size}/{fold.test_size}, "
                f"{fold.seconds:.0f} s)",
                flush=True,
            )

    result = cross_validate(
        dataset,
        model_config,
        cv_config,
        dataset=dataset.name,
        progress=not getattr(args, "no_progress", False),
        only_folds=getattr(args, "only_folds", None),
        on_fold_end=report,
        device=device,
    )
    result.extra["torch_threads"] = torch.get_num_threads()
    payload = result.to_dict()
    payload["seconds"] = time.perf_counter() - start
    if getattr(args, "output", None):
        _write_json_atomic(Path(args.output), payload)
    if quiet:
        print(json.dumps(payload))
        return 0
    print(
        f"{dataset.name}: test accuracy {100 * result.mean:.2f} ± {100 * result.std:.2f} "
        f"over {len(result.folds)} folds ({payload['seconds']:.0f} s)"
    )
    return 0


if __name__ == "__main__":  # pragma: no cover - convenience for `python -m`
    parser = argparse.ArgumentParser(prog="gatkit train --task graph")
    add_graph_arguments(parser)
    sys.exit(run_graph_task(parser.parse_args()))
