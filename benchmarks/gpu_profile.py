"""Where a training step's GPU time goes: gatkit (Triton) and PyG, kernel by kernel.

One command on a machine with a CUDA GPU, PyTorch, Triton and PyG (from the repository root)::

    PYTHONPATH=src python benchmarks/gpu_profile.py --out results_dir

The model and graphs of ``benchmarks/run.py`` (two 8 × 8 attention layers and the class
layer, dropout 0.6); after two warm-up steps, ``torch.profiler`` records ``--steps``
training steps of each library, and the device time of every kernel is summed over them.
Writes ``gpu_profile.json`` (per library and layer kind: total device milliseconds per step
and the kernels, largest first) and prints the largest kernels of each.
``--device cpu`` profiles the CPU path instead (a local smoke test of the script).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "benchmarks"))

import run as bench  # noqa: E402


def kernel_times(model, opt, x, edge_index, y, steps: int, device: torch.device) -> dict:
    """Device milliseconds per step of each kernel (CPU: self CPU time of each operator)."""
    on_gpu = device.type == "cuda"
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if on_gpu else [])
    with profile(activities=activities) as prof:
        for _ in range(steps):
            bench.train_step(model, opt, x, edge_index, y)
        if on_gpu:
            torch.cuda.synchronize()
    rows = {}
    for event in prof.key_averages():
        micros = event.self_device_time_total if on_gpu else event.self_cpu_time_total
        if micros > 0 and (not on_gpu or event.device_type.name == "CUDA"):
            rows[event.key] = rows.get(event.key, 0.0) + micros / 1000 / steps
    ranked = dict(sorted(rows.items(), key=lambda kv: -kv[1]))
    return {"total_ms_per_step": sum(ranked.values()), "kernels_ms_per_step": ranked}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=".")
    parser.add_argument("--graph", default="arxiv")
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--top", type=int, default=12)
    parser.add_argument("--device", default="cuda")
    args = parser.parse_args()
    device = torch.device(args.device)
    x, edge_index, y, classes = bench.make_graph(args.graph)
    x, edge_index, y = x.to(device), edge_index.to(device), y.to(device)
    report: dict = {"graph": args.graph, "steps": args.steps, "device": str(device)}
    if device.type == "cuda":
        report["gpu"] = torch.cuda.get_device_name()
    for op in ("gat", "gatv2"):
        models = bench.make_models(op, x.size(1), classes, ["gatkit", "pyg"])
        for impl, model in models.items():
            model = model.to(device)
            opt = torch.optim.Adam(model.parameters(), lr=5e-3)
            for _ in range(2):  # warm-up: compilation, CSR cache, Adam state
                bench.train_step(model, opt, x, edge_index, y)
            result = kernel_times(model, opt, x, edge_index, y, args.steps, device)
            report[f"{impl}-{op}"] = result
            print(f"\n{impl} {op}: {result['total_ms_per_step']:.2f} ms of kernels per step")
            for name, ms in list(result["kernels_ms_per_step"].items())[: args.top]:
                print(f"  {ms:8.3f} ms  {name[:110]}")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "gpu_profile.json").write_text(json.dumps(report, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
