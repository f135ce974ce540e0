"""``gatkit evaluate CHECKPOINT``: reload a trained model and print its accuracies.

The checkpoint says which kind of model wrote it and on which dataset; the model is rebuilt
from the stored configuration with the weights kept by early stopping, the dataset is loaded
again (``--data-dir`` or ``$GATKIT_DATA``) and the train, validation and test accuracies are
printed. Checkpoints of a kind this command does not know are refused with a clear message.
"""

from __future__ import annotations

import argparse
import json
from typing import Any


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``evaluate`` sub-command."""
    parser = subparsers.add_parser(
        "evaluate",
        help="reload a checkpoint written by 'gatkit train' and print its accuracy",
        description=(
            "Rebuild the model stored in CHECKPOINT (the weights kept by early stopping), "
            "evaluate it on its dataset and print train, validation and test accuracy."
        ),
    )
    parser.add_argument("checkpoint", metavar="CHECKPOINT", help="path of a checkpoint.pt file")
    parser.add_argument(
        "--data-dir", default=None, help="dataset root (default: $GATKIT_DATA, ~/.cache/gatkit)"
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object instead")
    parser.add_argument("--device", default="cpu", help="torch device (default: cpu)")
    parser.set_defaults(run=run)


def evaluate_node_checkpoint(record: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    """Accuracies of a node-classification checkpoint on the dataset it was trained on."""
    from gatkit.cli.checkpoints import node_model_and_graph
    from gatkit.train.node_trainer import NodeTrainer

    model, graph, dataset = node_model_and_graph(record, args.checkpoint, args.data_dir)
    model, graph = model.to(args.device), graph.to(args.device)
    trainer = NodeTrainer(model, graph, seed=record.get("seed"))
    scores = trainer.evaluate()
    return {
        "checkpoint": str(args.checkpoint),
        "model_kind": record["model_kind"],
        "model": record["config"]["operator"],
        "dataset": dataset,
        "seed": record.get("seed"),
        "epoch": record.get("epoch"),
        "best_epoch": (record.get("early_stopping") or {}).get("best_epoch"),
        "finished": record.get("finished"),
        "train_accuracy": scores["train"][1],
        "val_accuracy": scores["val"][1],
        "val_loss": scores["val"][0],
        "test_accuracy": scores["test"][1],
    }


#: How to evaluate each kind of checkpoint (``model_kind`` → function).
EVALUATORS = {"gat-node-classifier": evaluate_node_checkpoint}


def run(args: argparse.Namespace) -> int:
    """Entry point of ``gatkit evaluate``."""
    from gatkit.cli.checkpoints import open_checkpoint

    record, evaluate = open_checkpoint(args.checkpoint, EVALUATORS, "gatkit evaluate")
    scores = evaluate(record, args)
    if args.json:
        print(json.dumps(scores))
        return 0
    print(
        f"{scores['model']} on {scores['dataset']} (seed {scores['seed']}, kept epoch "
        f"{scores['best_epoch']} of {scores['epoch']}): test accuracy "
        f"{100 * scores['test_accuracy']:.1f}%, validation {100 * scores['val_accuracy']:.1f}%, "
        f"train {100 * scores['train_accuracy']:.1f}%"
    )
    return 0
