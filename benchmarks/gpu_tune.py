"""Launch settings of the Triton kernels: edges per block and warps per program, on a GPU.

One command on a machine with a CUDA GPU, PyTorch, Triton and PyG (from the repository root)::

    PYTHONPATH=src python benchmarks/gpu_tune.py --out results_dir

For each setting of :data:`gatkit.ops.fused_triton.LAUNCH`: the operator agreement checks of
``benchmarks/gpu_check.py`` (Triton against the chunked kernels, float32 and float64, 8
heads, square and bipartite, attention dropout, edge features, a gradient on α), then the
median CUDA-synchronised time of inference and of one training step of the benchmark model
on the arxiv-sized graph, GAT and GATv2; PyG's model once, for scale. Writes
``gpu_tune.json`` and prints a table.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "benchmarks"))

import gpu_check  # noqa: E402
import run as bench  # noqa: E402
from gatkit.ops import fused_triton  # noqa: E402

SETTINGS = [(32, 4), (32, 2), (32, 1), (16, 2), (16, 1), (8, 1), (64, 4)]


def agreement_worst() -> tuple[float, float]:
    """The worst relative error of the operator checks in float32 and in float64."""
    worst = {}
    for dtype in (torch.float32, torch.float64):
        errors = [
            gpu_check.operator_agreement(op, dtype, 8, bipartite, seed, 5000)["worst"]
            for seed, (op, bipartite) in enumerate(
                (op, b) for op in ("gat", "gatv2") for b in (False, True)
            )
        ]
        worst[dtype] = max(errors)
    return worst[torch.float32], worst[torch.float64]


def model_times(graph, op: str, impl: str, repeats: int) -> dict[str, float]:
    x, edge_index, y, classes = graph
    model = bench.make_models(op, x.size(1), classes, [impl])[impl].cuda()
    opt = torch.optim.Adam(model.parameters(), lr=5e-3)
    for _ in range(2):  # warm-up: compilation, CSR cache, Adam state
        bench.train_step(model, opt, x, edge_index, y)
    infer = gpu_check.cuda_time(lambda: bench.infer(model, x, edge_index), repeats)
    train = gpu_check.cuda_time(lambda: bench.train_step(model, opt, x, edge_index, y), repeats)
    return {"infer_ms": statistics.median(infer) * 1e3, "train_ms": statistics.median(train) * 1e3}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=".")
    parser.add_argument("--repeats", type=int, default=10)
    args = parser.parse_args()
    x, edge_index, y, classes = bench.make_graph("arxiv")
    graph = (x.cuda(), edge_index.cuda(), y.cuda(), classes)
    report: dict = {"gpu": torch.cuda.get_device_name(), "pyg": {}, "settings": []}
    for op in ("gat", "gatv2"):
        report["pyg"][op] = model_times(graph, op, "pyg", args.repeats)
    ok = True
    for block_e, num_warps in SETTINGS:
        fused_triton.LAUNCH.update(BLOCK_E=block_e, num_warps=num_warps)
        worst32, worst64 = agreement_worst()
        passed = worst32 <= gpu_check.TOLERANCE[torch.float32] and worst64 <= 1e-10
        ok &= passed
        row = {"BLOCK_E": block_e, "num_warps": num_warps, "float32": worst32}
        row.update(float64=worst64, agrees=passed)
        for op in ("gat", "gatv2"):
            row[op] = model_times(graph, op, "gatkit", args.repeats)
        report["settings"].append(row)
        print(json.dumps(row), flush=True)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "gpu_tune.json").write_text(json.dumps(report, indent=1) + "\n")
    print(f"\n{report['gpu']}, arxiv-sized graph, medians of {args.repeats}, ms")
    print("BLOCK_E warps | agree | GAT infer train | GATv2 infer train")
    pyg = report["pyg"]
    print(
        f"PyG           |       | {pyg['gat']['infer_ms']:6.2f} {pyg['gat']['train_ms']:6.2f} |"
        f" {pyg['gatv2']['infer_ms']:6.2f} {pyg['gatv2']['train_ms']:6.2f}"
    )
    for r in report["settings"]:
        print(
            f"{r['BLOCK_E']:7d} {r['num_warps']:5d} | {'yes' if r['agrees'] else 'NO':5s} |"
            f" {r['gat']['infer_ms']:6.2f} {r['gat']['train_ms']:6.2f} |"
            f" {r['gatv2']['infer_ms']:6.2f} {r['gatv2']['train_ms']:6.2f}"
        )
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
