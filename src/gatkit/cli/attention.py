"""``gatkit attention CHECKPOINT --node N``: draw (or list) the attention node N receives.

The checkpoint is rebuilt and run once on its own data (a DictionaryLookup graph regenerated
from the stored size and seed, or the Planetoid graph a node classifier was trained on), with
every GAT/GATv2 layer recording its coefficients :math:`\\alpha_{ij}`. The edges entering node
N in layer ``--layer`` (0-based, in module order) are drawn as a star, line width and colour
following :math:`\\alpha_{jN}` of head ``--head`` (or the mean over heads), or written as CSV
rows ``source,target,head,weight``. The attention entropy of every layer and head is printed
next to the entropy of uniform attention.

New checkpoint kinds plug in through :data:`ATTENTION_SOURCES` (``model_kind`` → function
returning an :class:`AttentionInput`).
"""

from __future__ import annotations

import argparse
import csv
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import Tensor, nn

from gatkit.errors import CheckpointError, GatkitError


class AttentionUsageError(GatkitError, ValueError):
    """An option of ``gatkit attention`` does not fit the checkpoint or the graph."""


@dataclass
class AttentionInput:
    """A model ready to run once on one graph, and how to name that graph's nodes."""

    model: nn.Module
    forward: Callable[[nn.Module], object]
    num_nodes: int
    describe: str
    node_label: Callable[[int], str] = str


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``attention`` sub-command."""
    parser = subparsers.add_parser(
        "attention",
        help="draw the attention a node receives from its neighbours, print attention entropy",
        description=(
            "Rebuild the model of CHECKPOINT, run it on its graph and draw node N's "
            "in-neighbourhood with edges weighted by attention (PNG) or list them (CSV)."
        ),
    )
    parser.add_argument("checkpoint", metavar="CHECKPOINT", help="checkpoint file")
    parser.add_argument("--node", type=int, required=True, help="target node N")
    parser.add_argument("--layer", type=int, default=0, help="attention layer, 0-based (default 0)")
    parser.add_argument(
        "--head", default="mean", help="head index, 'mean' over heads, or 'all' (CSV only)"
    )
    parser.add_argument("--out", default="attention.png", help="output file")
    parser.add_argument(
        "--format", choices=("png", "csv"), default=None, help="default: from the --out suffix"
    )
    parser.add_argument("--data-dir", default=None, help="dataset root of node checkpoints")
    parser.add_argument(
        "--graph", type=int, default=0, help="DictionaryLookup: index of the test graph"
    )
    parser.set_defaults(run=run)


# -- sources: one per checkpoint kind -------------------------------------------------------


def lookup_source(record: dict[str, Any], args: argparse.Namespace) -> AttentionInput:
    """A DictionaryLookup checkpoint: its test graph number ``--graph``, rebuilt from the seed."""
    from gatkit.data.dictionary_lookup import make_batch, make_dictionary_lookup
    from gatkit.models.lookup import LookupModel, LookupModelConfig

    try:
        config = LookupModelConfig(**record["config"])
        model = LookupModel(config)
        model.load_state_dict(record["model_state"])
    except (TypeError, ValueError, RuntimeError, KeyError) as error:
        raise CheckpointError(f"checkpoint does not fit a lookup model: {error}") from error
    problem = make_dictionary_lookup(config.k, seed=int(record["model_args"]["problem_seed"]))
    graphs = problem.test if problem.test.size(0) else problem.train
    if not 0 <= args.graph < graphs.size(0):
        raise AttentionUsageError(
            f"--graph must lie in [0, {graphs.size(0)}) (test graphs of k={config.k}), "
            f"got {args.graph}"
        )
    permutation = graphs[args.graph]
    batch = make_batch(permutation.unsqueeze(0))
    k = config.k

    def label(node: int) -> str:
        if node < k:
            return f"q{node}"
        return f"key {node - k}:{int(permutation[node - k])}"

    return AttentionInput(
        model=model,
        forward=lambda m: m(batch.tokens, batch.edge_index, batch.query_index),
        num_nodes=batch.num_nodes,
        describe=f"DictionaryLookup k={k}, {config.model} {config.heads}h, graph {args.graph}",
        node_label=label,
    )


def node_classifier_source(record: dict[str, Any], args: argparse.Namespace) -> AttentionInput:
    """A node-classification checkpoint (``gatkit train``): its Planetoid graph."""
    from gatkit.cli.checkpoints import node_model_and_graph

    model, graph, dataset = node_model_and_graph(record, args.checkpoint, args.data_dir)
    return AttentionInput(
        model=model,
        forward=lambda m: m(graph.x, graph.edge_index),
        num_nodes=graph.num_nodes,
        describe=f"{dataset}, {record['config'].get('operator', 'gat')}",
    )


#: How to rebuild each kind of checkpoint for inspection (``model_kind`` → function).
ATTENTION_SOURCES: dict[str, Callable[[dict[str, Any], argparse.Namespace], AttentionInput]] = {
    "dictionary-lookup": lookup_source,
    "gat-node-classifier": node_classifier_source,
}


# -- selection and output -------------------------------------------------------------------


def incoming_attention(
    edge_index: Tensor, alpha: Tensor, node: int, head: str
) -> list[tuple[int, int, str, float]]:
    """Rows ``(source, node, head, weight)`` of the edges entering ``node``.

    ``head`` is a head index, ``"mean"`` (average over heads) or ``"all"`` (one row per head).
    """
    heads = alpha.size(1)
    mask = edge_index[1] == node
    sources = edge_index[0, mask].tolist()
    weights = alpha[mask]  # [deg, H]
    if head == "mean":
        mean = weights.mean(dim=1).tolist()  # [deg]
        return [(s, node, "mean", w) for s, w in zip(sources, mean, strict=True)]
    if head == "all":
        return [
            (s, node, str(h), float(weights[i, h]))
            for h in range(heads)
            for i, s in enumerate(sources)
        ]
    try:
        index = int(head)
    except ValueError:
        index = -1
    if not 0 <= index < heads:
        raise AttentionUsageError(
            f"--head must be an index in [0, {heads}), 'mean' or 'all', got {head!r}"
        )
    chosen = weights[:, index].tolist()  # [deg]
    return [(s, node, str(index), w) for s, w in zip(sources, chosen, strict=True)]


def write_csv(rows: list[tuple[int, int, str, float]], path: Path) -> None:
    """``source,target,head,weight`` with a header line."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(("source", "target", "head", "weight"))
        for source, target, head, weight in rows:
            writer.writerow((source, target, head, f"{weight:.6g}"))


def draw_star(
    rows: list[tuple[int, int, str, float]],
    node: int,
    path: Path,
    title: str,
    label: Callable[[int], str] = str,
    size_inches: tuple[float, float] = (6.0, 6.0),
    dpi: int = 100,
    max_labels: int = 24,
) -> Path:
    """Node ``node`` in the centre, its in-neighbours on a circle by decreasing weight.

    Edge width and colour follow the weight; the ``max_labels`` heaviest neighbours are named.
    The PNG is ``size_inches × dpi`` pixels (600 × 600 by default).
    """
    import math

    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import colormaps
    from matplotlib.figure import Figure

    figure = Figure(figsize=size_inches, dpi=dpi)
    axes = figure.add_subplot()
    axes.set_axis_off()
    axes.set_aspect("equal")
    axes.set_xlim(-1.45, 1.45)
    axes.set_ylim(-1.45, 1.45)
    ordered = sorted(rows, key=lambda r: -r[3])
    top = max((r[3] for r in ordered), default=1.0) or 1.0
    cmap = colormaps["viridis"]
    for rank, (source, _target, _head, weight) in enumerate(ordered):
        angle = 2 * math.pi * rank / max(len(ordered), 1)
        x, y = math.cos(angle), math.sin(angle)
        share = weight / top
        axes.plot([x, 0], [y, 0], color=cmap(share), linewidth=0.5 + 5 * share, zorder=1)
        axes.scatter([x], [y], s=60, color="lightgrey", edgecolors="black", zorder=2)
        if rank < max_labels:
            name = f"{label(source)} (self)" if source == node else label(source)
            axes.annotate(
                f"{name}\n{weight:.3f}",
                (1.18 * x, 1.18 * y),
                ha="center",
                va="center",
                fontsize=7,
            )
    axes.scatter([0], [0], s=300, color="tab:red", edgecolors="black", zorder=3)
    axes.annotate(label(node), (0, 0), ha="center", va="center", fontsize=8, color="white")
    axes.set_title(title, fontsize=9)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, format="png", dpi=dpi)
    return path


def run(args: argparse.Namespace) -> int:
    """Entry point of ``gatkit attention``."""
    from gatkit.cli.checkpoints import open_checkpoint
    from gatkit.nn import record_attention
    from gatkit.train.attention_stats import layer_entropies

    record, make_source = open_checkpoint(args.checkpoint, ATTENTION_SOURCES, "gatkit attention")
    source = make_source(record, args)
    if not 0 <= args.node < source.num_nodes:
        raise AttentionUsageError(
            f"--node must lie in [0, {source.num_nodes}) for {source.describe}, got {args.node}"
        )
    out = Path(args.out)
    fmt = args.format or ("csv" if out.suffix.lower() == ".csv" else "png")
    if fmt == "png" and args.head == "all":
        raise AttentionUsageError("--head all needs --format csv; a PNG shows one head or 'mean'")

    model = source.model.eval()
    with record_attention(model) as recorded:
        source.forward(model)
    layers = list(recorded.items())
    if not 0 <= args.layer < len(layers):
        raise AttentionUsageError(
            f"--layer must lie in [0, {len(layers)}) for this model (layers "
            f"{', '.join(name for name, _ in layers)}), got {args.layer}"
        )
    layer_name, (edge_index, alpha) = layers[args.layer]
    rows = incoming_attention(edge_index, alpha, args.node, args.head)

    print(f"{source.describe}: attention entropy in nats (mean over nodes with in-edges)")
    for entry in layer_entropies(model, source.forward, source.num_nodes):
        print(f"  {entry.format()}")
    if not rows:
        print(f"node {args.node} has no incoming edges in layer {layer_name}", file=sys.stderr)
    if fmt == "csv":
        write_csv(rows, out)
    else:
        head = "mean over heads" if args.head == "mean" else f"head {args.head}"
        title = (
            f"{source.describe}\nattention into node {source.node_label(args.node)} "
            f"(layer {args.layer} '{layer_name}', {head})"
        )
        draw_star(rows, args.node, out, title, source.node_label)
    print(f"wrote {len(rows)} edges into node {args.node} (layer {layer_name}) to {out}")
    return 0
