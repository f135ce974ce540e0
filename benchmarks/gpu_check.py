"""The Triton kernels on a CUDA GPU: agreement first, then time and memory against PyG.

One command on a machine with a CUDA GPU, PyTorch, Triton and PyG (from the repository root)::

    PYTHONPATH=src python benchmarks/gpu_check.py --out results_dir

1. Agreement: the Triton kernels against the chunked PyTorch kernels on the same CUDA
   tensors (the chunked kernels are checked against the reference primitives in the CPU
   tests), forward output, attention and the gradient of every input, with attention
   dropout (one shared mask), edge features or separate messages, bipartite shapes and an
   upstream gradient on α; and the layers (Triton, the default on CUDA) against the
   reference backend in evaluation mode. float32 and float64.
2. Time and memory: the model of ``benchmarks/run.py`` (two 8 × 8 attention layers and the
   class layer, dropout 0.6) for gatkit and PyG with the same weights on the same GPU, the
   arxiv-sized graph and the 1 M-node growth graph: median of CUDA-synchronised wall time of
   inference and of one training step, alternating the libraries; peak of
   ``torch.cuda.max_memory_allocated`` over the memory in use before the step.

Writes ``gpu_check.json`` into ``--out`` and prints a table.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "benchmarks"))

import run as bench  # noqa: E402
from gatkit import ops  # noqa: E402
from gatkit.nn import GATConv, GATv2Conv  # noqa: E402

DEVICE = torch.device("cuda")  # --device cpu (with TRITON_INTERPRET=1): a local smoke test
TOLERANCE = {torch.float32: 1e-5, torch.float64: 1e-10}


def relative(a: torch.Tensor, b: torch.Tensor) -> float:
    scale = b.abs().max().clamp_min(1e-30)
    return float((a - b).abs().max() / scale)


def graph(num_src: int, num_dst: int, num_edges: int, gen: torch.Generator) -> torch.Tensor:
    """Random edges with duplicates and (for square graphs) self-loops; isolated nodes left."""
    src = torch.randint(0, num_src - 2, (num_edges,), generator=gen)  # the last sources: isolated
    dst = torch.randint(0, num_dst - 1, (num_edges,), generator=gen)  # the last target: no in-edge
    edge_index = torch.stack([src, dst])
    edge_index = torch.cat([edge_index, edge_index[:, :7]], 1)  # duplicates
    if num_src == num_dst:
        loops = torch.arange(3).repeat(2, 1)
        edge_index = torch.cat([edge_index, loops], 1)
    return edge_index.to(DEVICE)


def operator_agreement(
    op: str, dtype: torch.dtype, heads: int, bipartite: bool, seed: int, num_edges: int
) -> dict:
    gen = torch.Generator().manual_seed(seed)
    num_src, num_dst, C, D = (300, 200, 8, 3) if bipartite else (300, 300, 8, 3)
    edge_index = graph(num_src, num_dst, num_edges, gen)
    E = edge_index.size(1)
    csr = ops.build_csr(edge_index, num_src, num_dst)

    def rand(*shape):
        t = torch.randn(*shape, generator=gen, dtype=dtype)
        return t.to(DEVICE).requires_grad_(True)

    torch.manual_seed(1)
    drop = ops.attention_dropout(E, heads, 0.4, True, DEVICE)
    if op == "gat":
        inputs = [
            rand(num_src, heads),
            rand(num_dst, heads),
            rand(E, heads),
            rand(num_src, heads, C),
        ]
    else:
        inputs = [
            rand(num_src, heads, C),
            rand(num_dst, heads, C),
            rand(heads, C),
            rand(E, D),
            rand(heads * C, D),
            rand(num_src, heads, C),
        ]
    out_w = torch.randn(num_dst, heads, C, generator=gen, dtype=dtype).to(DEVICE)
    alpha_w = torch.randn(E, heads, generator=gen, dtype=dtype).to(DEVICE)
    results = {}
    for backend in ("triton", "chunked"):
        with ops.use_backend(backend):
            kernels = ops.kernels_for(DEVICE, dtype)
        if op == "gat":
            ss, sd, es, wh = inputs
            out, alpha = ops.gat_attention(kernels, csr, ss, sd, es, wh, 0.2, drop)
        else:
            xs, xt, att, edge_attr, edge_weight, values = inputs
            out, alpha = ops.gatv2_attention(
                kernels, csr, xs, xt, att, edge_attr, edge_weight, 0.2, drop, values
            )
        loss = (out * out_w).sum() + (alpha * alpha_w).sum()
        grads = torch.autograd.grad(loss, inputs)
        results[backend] = [out.detach(), alpha.detach(), *grads]
    names = ["out", "alpha"] + [f"grad{k}" for k in range(len(inputs))]
    errors = {
        n: relative(a, b)
        for n, a, b in zip(names, results["triton"], results["chunked"], strict=True)
    }
    return {"worst": max(errors.values()), "errors": errors}


def layer_agreement(operator, dtype: torch.dtype, bipartite: bool, edge_dim: int | None) -> float:
    gen = torch.Generator().manual_seed(7)
    num_src, num_dst = (300, 200) if bipartite else (300, 300)
    edge_index = graph(num_src, num_dst, 4000, gen)
    in_channels = (16, 12) if bipartite else 16
    torch.manual_seed(0)
    layer = operator(in_channels, 8, heads=8, edge_dim=edge_dim).to(DEVICE, dtype).eval()
    x_src = torch.randn(num_src, 16, generator=gen, dtype=dtype).to(DEVICE)
    x = (
        (x_src, torch.randn(num_dst, 12, generator=gen, dtype=dtype).to(DEVICE))
        if bipartite
        else x_src
    )
    edge_attr = None
    if edge_dim is not None:
        edge_attr = torch.randn(edge_index.size(1), edge_dim, generator=gen, dtype=dtype).to(DEVICE)
    outs = {}
    for backend in ("triton", "reference"):
        with ops.use_backend(backend), torch.no_grad():
            outs[backend] = layer(x, edge_index, edge_attr=edge_attr, return_attention_weights=True)
    (a, (_, alpha_a)), (b, (_, alpha_b)) = outs["triton"], outs["reference"]
    return max(relative(a, b), relative(alpha_a, alpha_b))


def layer_agreement_at_scale(graph_name: str, dtype: torch.dtype) -> list[dict]:
    """Each layer shape of the benchmark model, Triton against reference, on a large graph.

    Output and the gradients of the input and every parameter, training mode without
    dropout (the masks of the two paths would differ on CUDA). In float32 the gradients of
    the target side cancel (a destination's softmax gradients sum to zero), so both paths
    carry rounding errors of their own there; float64 is the check.
    """
    x, edge_index, _, classes = bench.make_graph(graph_name)
    x, edge_index = x.to(DEVICE, dtype), edge_index.to(DEVICE)
    rows = []
    for operator in (GATConv, GATv2Conv):
        for in_dim, out_dim, heads, concat in ((128, 8, 8, True), (128, classes, 1, False)):
            torch.manual_seed(0)
            layer = operator(in_dim, out_dim, heads=heads, concat=concat).to(DEVICE, dtype)
            width = heads * out_dim if concat else out_dim
            weights = torch.randn(x.size(0), width, device=DEVICE, dtype=dtype)
            results = {}
            for backend in ("triton", "reference"):
                xx = x.clone().requires_grad_(True)
                with ops.use_backend(backend):
                    out = layer.train()(xx, edge_index)
                grads = torch.autograd.grad((out * weights).sum(), [xx, *layer.parameters()])
                results[backend] = [out.detach(), *grads]
            errors = [relative(a, b) for a, b in zip(*results.values(), strict=True)]
            rows.append(
                {
                    "layer": operator.__name__,
                    "dtype": str(dtype),
                    "shape": [in_dim, out_dim, heads, concat],
                    "out": errors[0],
                    "worst_gradient": max(errors[1:]),
                }
            )
    return rows


def cuda_time(fn, repeats: int) -> list[float]:
    times = []
    for _ in range(repeats):
        torch.cuda.synchronize()
        start = time.perf_counter()
        fn()
        torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return times


def peak_step_bytes(fn) -> int:
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    before = torch.cuda.memory_allocated()
    fn()
    torch.cuda.synchronize()
    return torch.cuda.max_memory_allocated() - before


def speed_and_memory(graph_name: str, op: str, repeats: int) -> dict:
    x, edge_index, y, classes = bench.make_graph(graph_name)
    x, edge_index, y = x.to(DEVICE), edge_index.to(DEVICE), y.to(DEVICE)
    models = bench.make_models(op, x.size(1), classes, ["gatkit", "pyg"])
    models = {k: m.to(DEVICE) for k, m in models.items()}
    opts = {k: torch.optim.Adam(m.parameters(), lr=5e-3) for k, m in models.items()}
    diff = relative(  # before any training step: the same weights in both models
        bench.infer(models["gatkit"], x, edge_index), bench.infer(models["pyg"], x, edge_index)
    )
    for k, m in models.items():  # warm-up: compilation, CSR cache, Adam state
        bench.train_step(m, opts[k], x, edge_index, y)
        bench.train_step(m, opts[k], x, edge_index, y)
    times: dict[str, list[float]] = {f"{k}_{w}": [] for k in models for w in ("infer", "train")}
    for _ in range(repeats):
        for k, m in models.items():
            times[f"{k}_infer"] += cuda_time(lambda m=m: bench.infer(m, x, edge_index), 1)
            times[f"{k}_train"] += cuda_time(
                lambda m=m, k=k: bench.train_step(m, opts[k], x, edge_index, y), 1
            )
    memory = {}
    for k, m in models.items():
        memory[f"{k}_infer"] = peak_step_bytes(lambda m=m: bench.infer(m, x, edge_index))
        memory[f"{k}_train"] = peak_step_bytes(
            lambda m=m, k=k: bench.train_step(m, opts[k], x, edge_index, y)
        )
    return {
        "graph": graph_name,
        "op": op,
        "edges": int(edge_index.size(1)),
        "max_relative_difference_eval": diff,
        "seconds": {k: statistics.median(v) for k, v in times.items()},
        "all_seconds": times,
        "peak_bytes": memory,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=".")
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--agreement-only", action="store_true")
    args = parser.parse_args()
    global DEVICE
    DEVICE = torch.device(args.device)
    num_edges = 5000 if DEVICE.type == "cuda" else 300
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    report: dict = {
        "gpu": torch.cuda.get_device_name(0) if DEVICE.type == "cuda" else "none",
        "torch": torch.__version__,
        "triton": __import__("triton").__version__,
        "operators": [],
        "layers": [],
        "speed": [],
    }
    ok = True
    t0 = time.perf_counter()
    for dtype in (torch.float32, torch.float64):
        for op in ("gat", "gatv2"):
            for heads, bipartite in ((1, False), (8, False), (8, True)):
                seed = len(report["operators"])
                r = operator_agreement(op, dtype, heads, bipartite, seed, num_edges)
                r.update(op=op, dtype=str(dtype), heads=heads, bipartite=bipartite)
                r["pass"] = r["worst"] <= TOLERANCE[dtype]
                ok &= r["pass"]
                report["operators"].append(r)
                print(
                    f"operator {op} {dtype} heads={heads} bipartite={bipartite}: "
                    f"{r['worst']:.1e} {'ok' if r['pass'] else 'FAIL'}",
                    flush=True,
                )
        for operator in (GATConv, GATv2Conv):
            for bipartite, edge_dim in ((False, None), (True, 3)):
                err = layer_agreement(operator, dtype, bipartite, edge_dim)
                passed = err <= TOLERANCE[dtype]
                ok &= passed
                report["layers"].append(
                    {
                        "layer": operator.__name__,
                        "dtype": str(dtype),
                        "bipartite": bipartite,
                        "edge_dim": edge_dim,
                        "error": err,
                        "pass": passed,
                    }
                )
                print(
                    f"layer {operator.__name__} {dtype} bipartite={bipartite} "
                    f"edge_dim={edge_dim}: {err:.1e} {'ok' if passed else 'FAIL'}",
                    flush=True,
                )
    if DEVICE.type == "cuda":
        report["layers_at_scale"] = []
        for dtype in (torch.float64, torch.float32):
            for r in layer_agreement_at_scale("arxiv", dtype):
                if dtype == torch.float64:
                    r["pass"] = max(r["out"], r["worst_gradient"]) <= TOLERANCE[dtype]
                    ok &= r["pass"]
                report["layers_at_scale"].append(r)
                verdict = {True: "ok", False: "FAIL", None: "(float32: for information)"}
                print(
                    f"arxiv-sized {r['layer']} {r['shape']} {dtype}: out {r['out']:.1e}, "
                    f"gradients {r['worst_gradient']:.1e} {verdict[r.get('pass')]}",
                    flush=True,
                )
    report["agreement_seconds"] = time.perf_counter() - t0
    (out_dir / "gpu_check.json").write_text(json.dumps(report, indent=1))
    for graph_name in () if args.agreement_only else ("arxiv", "grow-1000000"):
        for op in ("gat", "gatv2"):
            r = speed_and_memory(graph_name, op, args.repeats)
            report["speed"].append(r)
            (out_dir / "gpu_check.json").write_text(json.dumps(report, indent=1))
            s, m = r["seconds"], r["peak_bytes"]
            print(
                f"{graph_name} {op}: infer {s['gatkit_infer'] * 1e3:.1f} ms vs PyG "
                f"{s['pyg_infer'] * 1e3:.1f} ms ({s['pyg_infer'] / s['gatkit_infer']:.1f}x); "
                f"train {s['gatkit_train'] * 1e3:.1f} ms vs {s['pyg_train'] * 1e3:.1f} ms "
                f"({s['pyg_train'] / s['gatkit_train']:.1f}x); train peak "
                f"{m['gatkit_train'] / 2**20:.0f} MB vs {m['pyg_train'] / 2**20:.0f} MB "
                f"(1/{m['pyg_train'] / m['gatkit_train']:.1f}); eval diff "
                f"{r['max_relative_difference_eval']:.1e}",
                flush=True,
            )
    print("ALL AGREEMENT CHECKS PASS" if ok else "SOME AGREEMENT CHECKS FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
