"""``gatkit demo``: forward and backward of a two-layer GATv2 on a generated graph."""

from __future__ import annotations

import argparse
import time

import torch

from gatkit.nn import GATv2Conv


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``demo`` sub-command."""
    parser = subparsers.add_parser(
        "demo", help="forward and backward pass of a two-layer GATv2 on a random graph"
    )
    parser.add_argument("--nodes", type=int, default=10_000, help="number of nodes")
    parser.add_argument("--degree", type=int, default=10, help="average in-degree")
    parser.add_argument("--features", type=int, default=128, help="input feature width")
    parser.add_argument("--seed", type=int, default=0, help="random seed")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Build the graph and model, time one forward and one backward pass, print shapes."""
    generator = torch.Generator().manual_seed(args.seed)
    num_edges = args.nodes * args.degree
    x = torch.randn(args.nodes, args.features, generator=generator)
    edge_index = torch.randint(0, args.nodes, (2, num_edges), generator=generator)
    conv1 = GATv2Conv(args.features, 8, heads=8)
    conv2 = GATv2Conv(64, 7, heads=1)
    start = time.perf_counter()
    hidden = torch.nn.functional.elu(conv1(x, edge_index))
    out = conv2(hidden, edge_index)
    forward_s = time.perf_counter() - start
    start = time.perf_counter()
    out.logsumexp(-1).mean().backward()
    backward_s = time.perf_counter() - start
    print(f"graph: {args.nodes} nodes, {num_edges} edges, {args.features} features")
    print(f"{conv1} -> hidden {tuple(hidden.shape)}; {conv2} -> out {tuple(out.shape)}")
    print(f"forward {forward_s * 1e3:.1f} ms, backward {backward_s * 1e3:.1f} ms")
    return 0
