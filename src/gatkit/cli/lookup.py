"""``gatkit lookup``: train on DictionaryLookup (Brody et al., 2022), one run or the k sweep.

One run prints train and test accuracy (``--json``: one JSON object) and, with ``--save``,
writes a checkpoint that ``gatkit attention`` can inspect. ``--sweep`` trains GAT (1 head),
GAT (8 heads) and GATv2 (1 head) for every k in ``--k-min … --k-max`` and writes
``lookup_sweep.csv`` and ``lookup_sweep.png`` (train accuracy against k) under ``--out``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from gatkit.errors import GatkitError

if TYPE_CHECKING:
    from gatkit.train.lookup import LookupTrainConfig

#: The CPU budget (measured on 2 shared cores; README states it): at most 2000 steps of 32
#: graphs, evaluations every 100 steps on 512 graphs per split, final accuracies on at most
#: 4096 random graphs per split, one torch thread.
DEFAULTS = {
    "steps": 2000,
    "batch_size": 32,
    "eval_every": 100,
    "eval_graphs": 512,
    "final_eval_graphs": 4096,
    "threads": 1,
}


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``lookup`` sub-command."""
    parser = subparsers.add_parser(
        "lookup",
        help="DictionaryLookup: GAT's static attention versus GATv2's dynamic attention",
        description=(
            "Train the DictionaryLookup model of Brody et al. (2022) and print train and test "
            "accuracy; --sweep runs GAT 1 head, GAT 8 heads and GATv2 1 head over k."
        ),
    )
    parser.add_argument("--k", type=int, default=10, help="dictionary size (default 10)")
    parser.add_argument("--model", choices=("gat", "gatv2"), default="gatv2")
    parser.add_argument("--heads", type=int, default=1, help="attention heads (default 1)")
    parser.add_argument("--steps", type=int, default=DEFAULTS["steps"], help="optimiser steps")
    parser.add_argument(
        "--batch-size", type=int, default=DEFAULTS["batch_size"], help="graphs per step"
    )
    parser.add_argument(
        "--eval-every", type=int, default=DEFAULTS["eval_every"], help="steps between evaluations"
    )
    parser.add_argument(
        "--eval-graphs",
        type=int,
        default=DEFAULTS["eval_graphs"],
        help="graphs per split in the periodic evaluations",
    )
    parser.add_argument(
        "--final-eval-graphs",
        type=int,
        default=DEFAULTS["final_eval_graphs"],
        help="graphs per split in the final evaluation (0: all; default 4096)",
    )
    parser.add_argument("--seed", type=int, default=11, help="training seed (paper: 11)")
    parser.add_argument("--data-seed", type=int, default=0, help="seed of the examples and split")
    parser.add_argument(
        "--threads",
        type=int,
        default=DEFAULTS["threads"],
        help="torch CPU threads (default 1: small batches gain little from more, and on "
        "busy shared cores several threads slow every step down)",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--save", metavar="CHECKPOINT", default=None, help="save the model")
    parser.add_argument("--sweep", action="store_true", help="run the k sweep of figure 2")
    parser.add_argument("--k-min", type=int, default=4)
    parser.add_argument("--k-max", type=int, default=20)
    parser.add_argument(
        "--models",
        default="gat:1,gat:8,gatv2:1",
        help="sweep: comma-separated OPERATOR:HEADS pairs (default: the paper's figure 2)",
    )
    parser.add_argument("--out", default="results/lookup", help="sweep output folder")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    parser.set_defaults(run=run)


@contextlib.contextmanager
def torch_threads(threads: int | None) -> Iterator[None]:
    """Use ``threads`` CPU threads inside the block, then restore the previous number."""
    import torch

    if threads is None:
        yield
        return
    if threads < 1:
        raise GatkitError(f"--threads must be a positive int, got {threads}")
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def _train_config(args: argparse.Namespace) -> LookupTrainConfig:
    from gatkit.train.lookup import LookupTrainConfig

    try:
        return LookupTrainConfig(
            steps=args.steps,
            batch_size=args.batch_size,
            eval_every=args.eval_every,
            eval_graphs=args.eval_graphs,
            final_eval_graphs=args.final_eval_graphs or None,
            seed=args.seed,
        )
    except ValueError as error:
        raise GatkitError(str(error)) from error


def run(args: argparse.Namespace) -> int:
    """Entry point of ``gatkit lookup``."""
    config = _train_config(args)
    if args.sweep and args.save:
        raise GatkitError("--save keeps the model of a single run; it cannot be used with --sweep")
    with torch_threads(args.threads):
        return run_sweep(args, config) if args.sweep else run_single(args, config)


def run_single(args: argparse.Namespace, config: LookupTrainConfig) -> int:
    """Train one model, print its accuracies, optionally save it."""
    from gatkit.data.dictionary_lookup import make_dictionary_lookup
    from gatkit.models.lookup import LookupModelConfig
    from gatkit.train.checkpoint import save_checkpoint
    from gatkit.train.lookup import lookup_checkpoint_payload, train_lookup
    from gatkit.train.lookup_attention import lookup_attention_report

    try:
        model_config = LookupModelConfig(args.k, args.model, args.heads)
        problem = make_dictionary_lookup(args.k, seed=args.data_seed)
    except ValueError as error:
        raise GatkitError(str(error)) from error
    result = train_lookup(problem, model_config, config)
    summary = result.summary()
    summary.update(batch_size=config.batch_size, max_steps=config.steps, data_seed=args.data_seed)
    graphs = problem.test if problem.test.size(0) else problem.train
    report = lookup_attention_report(result.model, graphs[:512])
    summary["attention"] = report.as_dict()
    if args.save:
        payload = lookup_checkpoint_payload(result, problem, config)
        summary["checkpoint"] = str(save_checkpoint(args.save, payload))
    if args.json:
        print(json.dumps(summary))
        return 0
    name = f"{args.model.upper().replace('V2', 'v2')} ({args.heads} head{'s' * (args.heads > 1)})"
    print(
        f"DictionaryLookup k={args.k}, {name}: train accuracy {100 * result.train.node:.2f}% "
        f"({100 * result.train.graph:.2f}% of graphs), test accuracy "
        f"{100 * result.test.node:.2f}% ({100 * result.test.graph:.2f}% of graphs)"
    )
    print(
        f"budget: {result.steps} steps of {config.batch_size} graphs ({result.graphs_seen} "
        f"graphs), training {result.train_seconds:.1f} s, evaluation {result.eval_seconds:.1f} s"
    )
    print(
        "attention averaged over heads: the correct key gets the highest attention for "
        f"{100 * report.correct_key[-1]:.1f}% of queries and the lowest for "
        f"{100 * report.correct_key_lowest[-1]:.1f}% (mean rank {report.correct_key_rank[-1]:.2f}"
        f", 0 = highest, 0.5 = static); one argmax key serves every query in "
        f"{100 * report.same_key[-1]:.1f}% of graphs"
    )
    if args.save:
        print(f"checkpoint: {summary['checkpoint']}")
    return 0


def run_sweep(args: argparse.Namespace, config: LookupTrainConfig) -> int:
    """Train the three models for every k, write CSV and PNG, print the table."""
    from tqdm.auto import tqdm

    from gatkit.train.lookup_sweep import plot_sweep
    from gatkit.train.lookup_sweep import run_sweep as sweep

    if not 2 <= args.k_min <= args.k_max:
        raise GatkitError(
            f"--k-min and --k-max must satisfy 2 <= k-min <= k-max, got {args.k_min}, {args.k_max}"
        )
    out = Path(args.out)
    ks = range(args.k_min, args.k_max + 1)
    models = parse_models(args.models)
    total = len(ks) * len(models)
    start = time.perf_counter()
    with tqdm(total=total, desc="lookup sweep", unit="run", disable=args.no_progress) as bar:

        def advance(row: dict) -> None:
            bar.set_postfix_str(
                f"k={row['k']} {row['model']} {row['heads']}h "
                f"train {100 * row['train_accuracy']:.0f}%"
            )
            bar.update()

        csv_path = out / "lookup_sweep.csv"
        rows = sweep(
            ks, config, csv_path, models=models, problem_seed=args.data_seed, on_run=advance
        )
    png = plot_sweep(rows, out / "lookup_sweep.png")
    wall = time.perf_counter() - start
    if args.json:
        print(json.dumps({"rows": rows, "wall_seconds": round(wall, 1), "png": str(png)}))
        return 0
    print(format_table(rows))
    print(
        f"budget per run: at most {config.steps} steps of {config.batch_size} graphs; "
        f"wall time {wall:.0f} s; wrote {out / 'lookup_sweep.csv'} and {png}",
        file=sys.stdout,
    )
    return 0


def parse_models(text: str) -> list[tuple[str, int]]:
    """``"gat:1,gatv2:1"`` -> ``[("gat", 1), ("gatv2", 1)]``; a clear error otherwise."""
    models = []
    for item in text.split(","):
        operator, _, heads = item.strip().partition(":")
        if operator not in ("gat", "gatv2") or not heads.isdigit() or int(heads) < 1:
            raise GatkitError(
                f"--models takes OPERATOR:HEADS pairs such as gat:1,gatv2:1 (operator gat or "
                f"gatv2, heads a positive int); got {item.strip()!r}"
            )
        models.append((operator, int(heads)))
    return models


def format_table(rows: list[dict]) -> str:
    """Markdown table: one line per k, train/test accuracy (%) of each model."""
    models = []
    for row in rows:
        if (row["model"], row["heads"]) not in models:
            models.append((row["model"], row["heads"]))
    names = [f"{m.upper().replace('V2', 'v2')} {h}h" for m, h in models]
    header = "| k | " + " | ".join(f"{n} train / test" for n in names) + " |"
    lines = [header, "|" + "---|" * (len(models) + 1)]
    for k in sorted({r["k"] for r in rows}):
        cells = []
        for model in models:
            match = [r for r in rows if r["k"] == k and (r["model"], r["heads"]) == model]
            if match:
                r = match[0]
                cells.append(f"{100 * r['train_accuracy']:.1f} / {100 * r['test_accuracy']:.1f}")
            else:
                cells.append("–")
        lines.append(f"| {k} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
