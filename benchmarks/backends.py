"""Time one attention layer on each CPU kernel set (reference, chunked PyTorch, C++).

One layer, 128 → 8 heads × 8, on the arxiv-sized random graph of ``run.py`` (1.17 M edges,
1.34 M with self-loops), float32: the forward pass in evaluation mode, and forward +
backward in training mode with attention dropout 0.6. Medians of ``--repeats`` after one
warm-up; writes JSON and prints a markdown table::

    python benchmarks/backends.py --out benchmarks/results/backends.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from gatkit import ops  # noqa: E402
from gatkit.nn import GATConv, GATv2Conv  # noqa: E402
from run import make_graph  # noqa: E402  (the same graphs as the main benchmark)

BACKENDS = ("reference", "chunked", "cpp")


def median_seconds(step, repeats: int) -> float:
    step()  # warm-up: CSR cached, kernels loaded
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--op", choices=("gat", "gatv2"), default="gatv2")
    parser.add_argument("--graph", default="arxiv")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", default=None, help="JSON file for the results")
    args = parser.parse_args()

    x, edge_index, _, _ = make_graph(args.graph)
    operator = GATConv if args.op == "gat" else GATv2Conv
    torch.manual_seed(0)
    layer = operator(x.size(1), 8, heads=8, dropout=0.6)
    rows = []
    for backend in BACKENDS:
        with ops.use_backend(backend):

            def forward():
                layer.eval()
                with torch.no_grad():
                    layer(x, edge_index)

            def forward_backward():
                layer.train()
                layer.zero_grad(set_to_none=True)
                layer(x, edge_index).sum().backward()

            rows.append(
                {
                    "backend": backend,
                    "forward_s": median_seconds(forward, args.repeats),
                    "forward_backward_s": median_seconds(forward_backward, args.repeats),
                }
            )
        print(json.dumps(rows[-1]), flush=True)
    result = {"op": args.op, "graph": args.graph, "threads": torch.get_num_threads(), "rows": rows}
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=1))
    print("| path | forward | forward + backward |\n|---|---:|---:|")
    for row in rows:
        seconds = f"{row['forward_s']:.2f} s | {row['forward_backward_s']:.2f} s"
        print(f"| {row['backend']} | {seconds} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
