"""gatkit against PyG ``GATConv`` / ``GATv2Conv`` on CPU: time, peak memory, scaling.

One command (from the repository root)::

    .venv/bin/python benchmarks/run.py            # full run, writes benchmarks/results/
    .venv/bin/python benchmarks/run.py --quick    # small graphs only, a smoke test
    .venv/bin/python benchmarks/run.py --masks torch   # gatkit with F.dropout's masks

Model (both libraries, the same weights copied with :func:`gatkit.interop.from_pyg`): two
attention layers of 8 heads x 8 hidden (concatenated, ELU), then the class layer (1 head);
feature dropout 0.6 before each layer and attention dropout 0.6 in training, as in the GAT
paper. PyG's model is ``dropout -> conv -> ELU`` with ``F.dropout`` and ``F.elu``; gatkit's
is the same computation with :func:`gatkit.nn.lean_dropout` for the dropouts (ELU and the
next dropout as one step that keeps the layer output and a one-byte mask; its masks come
from gatkit's default generator, Philox, or with ``--masks torch`` from ``F.dropout``'s
random stream, so that both models give equal outputs for a seed); the
memory of gatkit's layers inside PyG's plain model is measured too (``gatkit-plain``).
Graphs: Cora (the real Planetoid files), an ogbn-arxiv-sized random graph (169,343
nodes, 1,166,243 directed edges, 128 features, 40 classes), and a growth series of random
graphs with average in-degree 10 (10k to 1M nodes). Figures:

- time: median over interleaved repeats of inference (``eval``, ``no_grad``) and of one
  training step (forward, cross-entropy, backward, Adam); gatkit and PyG alternate in one
  process, on the same graph and weights, so load from other processes hits both alike;
  with ``--allocator keep`` the process keeps freed memory for reuse
  (:func:`gatkit.train.keep_freed_memory`), so that tensors above glibc's 32 MiB mmap
  threshold are not page-faulted again at every step, in both libraries; with
  ``--allocator thp`` every worker process (time and memory) runs with
  ``GLIBC_TUNABLES=glibc.malloc.hugetlb=1``: glibc asks for transparent huge pages for its
  large blocks (``madvise``) and still returns them when freed; with ``--allocator
  huge-pages`` every worker (time and memory) puts gatkit's huge-page allocator in place
  (:func:`gatkit.train.use_huge_pages`: 2 MiB-aligned mappings advised for huge pages for
  tensors of 32 MiB or more, unmapped when freed) for both libraries, and with
  ``--allocator as-shipped`` for gatkit's calls alone, as ``gatkit train`` runs (PyG keeps
  glibc's default);
- peak memory: each (library, layer, mode) in a fresh subprocess; the increase of
  ``ru_maxrss`` over its value after setup (graph, model, optimiser, one tiny forward);
- the floor (arxiv): the peak of gatkit's model with each attention layer replaced by its
  projection alone, which any attention layer inside this model pays too;
- the exponent ``b`` of ``time = a E^b`` fitted over the growth series, and the largest
  graph of the series that trains within 24 GiB, from a linear fit of total peak RSS
  against E (and, with ``--confirm N``, one real training step of gatkit at ``N`` nodes).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(os.environ.get("GATKIT_DATA", ROOT.parent / "shared" / "data"))
ARXIV = (169_343, 1_166_243, 128, 40)
GROWTH = (10_000, 30_000, 100_000, 300_000, 1_000_000)
PYG_GROWTH_LIMIT = 300_000  # PyG beyond this takes minutes per step here
MEMORY_LIMIT = 24 * 2**30
HEADS, HIDDEN, DROPOUT = 8, 8, 0.6


# --------------------------------------------------------------------------- graphs ----
def make_graph(name: str) -> tuple[Tensor, Tensor, Tensor, int]:
    """``(x [N, F], edge_index [2, E], y [N], num_classes)`` of a benchmark graph."""
    if name == "cora":
        from gatkit.data.planetoid import load_planetoid

        g = load_planetoid("cora", root=DATA, download=False)
        return g.x, g.edge_index, g.y, int(g.y.max()) + 1
    if name == "arxiv":
        num_nodes, num_edges, features, classes = ARXIV
    elif name.startswith("grow-"):
        num_nodes = int(name.split("-")[1])
        num_edges, features, classes = 10 * num_nodes, 128, 40
    else:
        raise ValueError(f"unknown graph {name!r}")
    gen = torch.Generator().manual_seed(0)
    edge_index = torch.randint(0, num_nodes, (2, num_edges), generator=gen)
    x = torch.randn(num_nodes, features, generator=gen)
    y = torch.randint(0, classes, (num_nodes,), generator=gen)
    return x, edge_index, y, classes


def graph_edges(name: str) -> int:
    if name == "cora":
        return 10_556
    if name == "arxiv":
        return ARXIV[1]
    return 10 * int(name.split("-")[1])


# --------------------------------------------------------------------------- models ----
class Net(nn.Module):
    """Dropout → conv → ELU, twice, then dropout → class conv."""

    def __init__(self, convs: list[nn.Module]) -> None:
        super().__init__()
        self.convs = nn.ModuleList(convs)

    def forward(self, x: Tensor, edge_index: Tensor) -> Tensor:
        for k, conv in enumerate(self.convs):
            x = F.dropout(x, DROPOUT, self.training)
            x = conv(x, edge_index)
            if k < len(self.convs) - 1:
                x = F.elu(x)
        return x


class LeanNet(Net):
    """The same model with gatkit's memory-lean dropout (:func:`gatkit.nn.recomputed_dropout`).

    ELU and the next layer's input dropout run as one step that keeps the layer output and a
    one-byte mask; the attention layer keeps that recipe instead of its dropped input. With
    ``--masks torch`` the masks are drawn from the same random stream as ``F.dropout``, so
    with the same seed the outputs equal :class:`Net`'s.
    """

    def forward(self, x: Tensor, edge_index: Tensor) -> Tensor:
        from gatkit.nn import lean_dropout

        x = lean_dropout(x, DROPOUT, self.training)
        last = len(self.convs) - 1
        for k, conv in enumerate(self.convs):
            x = conv(x, edge_index)
            if k < last:
                x = lean_dropout(x, DROPOUT, self.training, activation="elu")
        return x


class NoAttention(nn.Linear):
    """A layer of the floor model: the projection alone, no attention (the graph unused)."""

    def forward(self, x: Tensor, edge_index: Tensor) -> Tensor:  # noqa: ARG002
        from gatkit.nn.recompute import dropped_inputs_as_recipes

        with dropped_inputs_as_recipes():  # as a gatkit layer keeps its lean-dropout input
            return super().forward(x)


def make_models(op: str, in_dim: int, classes: int, impls: list[str]) -> dict[str, Net]:
    """PyG model and the gatkit model with the same weights (both when both are asked).

    ``"floor"`` is the same model with each attention layer replaced by its projection
    alone: the memory its dropouts, ELUs, projections and loss keep for the backward pass
    is a floor under any attention layer's figure.
    """
    width = HEADS * HIDDEN
    if impls == ["floor"]:
        floor = [NoAttention(in_dim, width), NoAttention(width, width), NoAttention(width, classes)]
        return {"floor": LeanNet(floor)}
    import torch_geometric.nn as pyg_nn

    from gatkit.interop import from_pyg

    torch.manual_seed(0)
    conv = pyg_nn.GATConv if op == "gat" else pyg_nn.GATv2Conv
    pyg = Net(
        [
            conv(in_dim, HIDDEN, heads=HEADS, dropout=DROPOUT),
            conv(width, HIDDEN, heads=HEADS, dropout=DROPOUT),
            conv(width, classes, heads=1, concat=False, dropout=DROPOUT),
        ]
    )
    models = {"pyg": pyg}
    if "gatkit" in impls:
        models["gatkit"] = LeanNet([from_pyg(c) for c in pyg.convs])
    if "gatkit-plain" in impls:  # gatkit's layers inside PyG's F.dropout / F.elu model
        models["gatkit-plain"] = Net([from_pyg(c) for c in pyg.convs])
    return {k: v for k, v in models.items() if k in impls}


def infer(model: Net, x: Tensor, edge_index: Tensor) -> Tensor:
    model.eval()
    with torch.no_grad():
        return model(x, edge_index)


def train_step(model: Net, opt: torch.optim.Optimizer, x, edge_index, y) -> float:
    model.train()
    opt.zero_grad(set_to_none=True)
    loss = F.cross_entropy(model(x, edge_index), y)
    loss.backward()
    opt.step()
    return float(loss)


# --------------------------------------------------------------------------- workers ---
def set_allocator(impl: str | None = None) -> str:
    """Put this worker's allocator policy (``GATKIT_BENCH_ALLOCATOR``) in place; its name.

    ``impl`` is the one library a memory worker runs (``None``: a timing worker, both).
    ``as-shipped`` is put in place here only for a gatkit-only worker; a timing worker
    scopes it to gatkit's calls with :func:`allocator_for`.
    """
    allocator = os.environ.get("GATKIT_BENCH_ALLOCATOR", "glibc")
    if allocator == "keep":  # both libraries: freed memory reused, no page faults per step
        from gatkit.train import keep_freed_memory

        if not keep_freed_memory():
            allocator = "glibc (keep_freed_memory had no effect here)"
    if allocator == "huge-pages" or (impl is not None and gatkit_call_as_shipped(impl, allocator)):
        from gatkit.train import use_huge_pages

        if not use_huge_pages():
            allocator = f"glibc ({allocator}: use_huge_pages had no effect here)"
    return allocator


def gatkit_call_as_shipped(impl: str, allocator: str) -> bool:
    """Whether ``impl``'s calls get gatkit's allocator under ``as-shipped`` (not PyG's)."""
    return allocator == "as-shipped" and impl != "pyg"


def allocator_for(impl: str, allocator: str):
    """The context a timing worker runs ``impl``'s calls in: gatkit's huge-page allocator
    around gatkit's calls alone under ``as-shipped`` (as ``gatkit train`` runs; PyG keeps
    glibc's default), nothing otherwise."""
    from contextlib import nullcontext

    if gatkit_call_as_shipped(impl, allocator):
        from gatkit.train import huge_pages

        return huge_pages()
    return nullcontext()


def worker_time(graph: str, op: str, impls: list[str], repeats: int) -> dict:
    allocator = set_allocator()
    x, edge_index, y, classes = make_graph(graph)
    models = make_models(op, x.size(1), classes, impls)
    opts = {k: torch.optim.Adam(m.parameters(), lr=5e-3) for k, m in models.items()}
    result: dict = {"graph": graph, "op": op, "edges": int(edge_index.size(1))}
    result["allocator"] = allocator
    result["glibc_tunables"] = os.environ.get("GLIBC_TUNABLES", "")
    outs = {k: infer(m, x, edge_index) for k, m in models.items()}  # warm-up, CSR cached
    if len(outs) == 2:
        diff = (outs["gatkit"] - outs["pyg"]).abs().max() / outs["pyg"].abs().max()
        result["max_relative_difference"] = float(diff)
    for k, m in models.items():
        with allocator_for(k, allocator):
            train_step(m, opts[k], x, edge_index, y)  # warm-up (Adam state)
    times: dict[str, list[float]] = {f"{k}_{w}": [] for k in models for w in ("infer", "train")}
    for _ in range(repeats):
        for k, m in models.items():
            with allocator_for(k, allocator):
                t = time.perf_counter()
                infer(m, x, edge_index)
                times[f"{k}_infer"].append(time.perf_counter() - t)
                t = time.perf_counter()
                train_step(m, opts[k], x, edge_index, y)
                times[f"{k}_train"].append(time.perf_counter() - t)
    result["seconds"] = {k: statistics.median(v) for k, v in times.items()}
    result["all_seconds"] = times
    return result


def worker_memory(graph: str, op: str, impl: str, mode: str) -> dict:
    # memory runs take gatkit's allocator policies; keep's held memory would distort the peaks
    policy = os.environ.get("GATKIT_BENCH_ALLOCATOR", "glibc")
    allocator = set_allocator(impl) if policy in ("huge-pages", "as-shipped") else "glibc"
    x, edge_index, y, classes = make_graph(graph)
    model = make_models(op, x.size(1), classes, [impl])[impl]
    opt = torch.optim.Adam(model.parameters(), lr=5e-3)
    tiny = torch.tensor([[0, 1], [1, 0]])
    infer(model, x[:2], tiny)  # lazy imports and the compiled kernels load before baseline
    baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    t = time.perf_counter()
    if mode == "infer":
        infer(model, x, edge_index)
    else:
        train_step(model, opt, x, edge_index, y)
    seconds = time.perf_counter() - t
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return {
        "graph": graph,
        "op": op,
        "impl": impl,
        "mode": mode,
        "edges": int(edge_index.size(1)),
        "baseline_bytes": baseline,
        "peak_bytes": peak,
        "increase_bytes": peak - baseline,
        "seconds_single_run": seconds,
        "allocator": allocator,
        "glibc_tunables": os.environ.get("GLIBC_TUNABLES", ""),
    }


# --------------------------------------------------------------------------- driver ----
def run_job(job: dict, timeout: float) -> dict | None:
    cmd = [sys.executable, __file__, "--worker", json.dumps(job)]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        print(f"  timed out after {timeout:.0f} s: {job}", flush=True)
        return {"job": job, "error": f"timeout {timeout:.0f} s"}
    if done.returncode != 0:
        tail = done.stderr.strip().splitlines()[-3:]
        print(f"  failed ({done.returncode}): {job}: {tail}", flush=True)
        return {"job": job, "error": " | ".join(tail)}
    return {"job": job, **json.loads(done.stdout.strip().splitlines()[-1])}


def plan(quick: bool, confirm: int | None) -> list[dict]:
    graphs = ["cora", "grow-10000", "grow-30000"] if quick else ["cora", "arxiv"]
    growth = [] if quick else [f"grow-{n}" for n in GROWTH]
    jobs: list[dict] = []
    for op in ("gat", "gatv2"):
        for g in graphs + growth:
            n = int(g.split("-")[1]) if g.startswith("grow-") else 0
            impls = ["gatkit"] + (["pyg"] if n <= PYG_GROWTH_LIMIT else [])
            repeats = 2 if quick else (5 if graph_edges(g) <= 1_200_000 else 3)
            jobs.append({"kind": "time", "graph": g, "op": op, "impls": impls, "repeats": repeats})
    for op in ("gat", "gatv2"):
        for g in graphs:
            for impl in ("gatkit", "pyg") + (("floor",) if op == "gat" and g == "arxiv" else ()):
                for mode in ("infer", "train"):
                    job = {"kind": "memory", "graph": g, "op": op, "impl": impl, "mode": mode}
                    jobs.append(job)
            if g == "arxiv":
                job = {"kind": "memory", "graph": g, "op": op, "impl": "gatkit-plain"}
                jobs.append({**job, "mode": "train"})
        for g in growth:
            n = int(g.split("-")[1])
            for impl in ["gatkit"] + (["pyg"] if n <= PYG_GROWTH_LIMIT else []):
                jobs.append({"kind": "memory", "graph": g, "op": op, "impl": impl, "mode": "train"})
    if confirm:
        for op in ("gat", "gatv2"):
            g = f"grow-{confirm}"
            jobs.append({"kind": "memory", "graph": g, "op": op, "impl": "gatkit", "mode": "train"})
    return jobs


def fit_power(points: list[tuple[float, float]]) -> float | None:
    """Least-squares exponent ``b`` of ``y = a x^b``."""
    if len(points) < 2:
        return None
    lx = [math.log(p[0]) for p in points]
    ly = [math.log(p[1]) for p in points]
    mx, my = statistics.fmean(lx), statistics.fmean(ly)
    return sum((a - mx) * (b - my) for a, b in zip(lx, ly, strict=True)) / sum(
        (a - mx) ** 2 for a in lx
    )


def fit_line(points: list[tuple[float, float]]) -> tuple[float, float] | None:
    """Least-squares ``(intercept, slope)``."""
    if len(points) < 2:
        return None
    mx = statistics.fmean(p[0] for p in points)
    my = statistics.fmean(p[1] for p in points)
    slope = sum((p[0] - mx) * (p[1] - my) for p in points) / sum((p[0] - mx) ** 2 for p in points)
    return my - slope * mx, slope


def summarise(results: list[dict]) -> dict:
    ok = [r for r in results if "error" not in r]
    timing = {(r["graph"], r["op"]): r for r in ok if r["job"]["kind"] == "time"}
    memory = {
        (r["graph"], r["op"], r["impl"], r["mode"]): r for r in ok if r["job"]["kind"] == "memory"
    }
    summary: dict = {
        "exponents": {},
        "exponents_100k_to_3M_edges": {},
        "exponents_from_1M_edges": {},
        "largest_trainable": {},
    }
    for op in ("gat", "gatv2"):
        for impl in ("gatkit", "pyg"):
            for mode in ("infer", "train"):
                pts = [
                    (r["edges"], r["seconds"][f"{impl}_{mode}"])
                    for (g, o), r in timing.items()
                    if o == op and g.startswith("grow-") and f"{impl}_{mode}" in r["seconds"]
                ]
                summary["exponents"][f"{op}/{impl}/{mode}"] = fit_power(pts)
                issue_range = [p for p in pts if 100_000 <= p[0] <= 3_000_000]
                summary["exponents_100k_to_3M_edges"][f"{op}/{impl}/{mode}"] = fit_power(
                    issue_range
                )
                large = [p for p in pts if p[0] >= 1_000_000]
                summary["exponents_from_1M_edges"][f"{op}/{impl}/{mode}"] = fit_power(large)
            pts = [
                (r["edges"], r["peak_bytes"])
                for (g, o, i, m), r in memory.items()
                if o == op and i == impl and m == "train" and g.startswith("grow-")
            ]
            line = fit_line(pts)
            if line is not None and line[1] > 0:
                max_edges = (MEMORY_LIMIT - line[0]) / line[1]
                summary["largest_trainable"][f"{op}/{impl}"] = {
                    "bytes_per_edge": line[1],
                    "intercept_bytes": line[0],
                    "max_edges": max_edges,
                    "max_nodes_at_degree_10": max_edges / 10,
                }
    return summary


def markdown(results: list[dict], summary: dict) -> str:
    ok = [r for r in results if "error" not in r]
    mem = {
        (r["graph"], r["op"], r["impl"], r["mode"]): r["increase_bytes"]
        for r in ok
        if r["job"]["kind"] == "memory"
    }
    lines = [
        "| graph | layer | E | infer gatkit | infer PyG | speed-up | train gatkit | train PyG "
        "| speed-up | train peak gatkit | train peak PyG | memory ratio |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]

    def ms(v):
        return "–" if v is None else (f"{v * 1000:.0f} ms" if v < 10 else f"{v:.1f} s")

    def mb(v):
        return "–" if v is None else f"{v / 2**20:.0f} MB"

    for r in ok:
        if r["job"]["kind"] != "time":
            continue
        s = r["seconds"]
        g, op = r["graph"], r["op"]
        name = "GATConv" if op == "gat" else "GATv2Conv"
        gi, pi = s.get("gatkit_infer"), s.get("pyg_infer")
        gt, pt = s.get("gatkit_train"), s.get("pyg_train")
        gm, pm = mem.get((g, op, "gatkit", "train")), mem.get((g, op, "pyg", "train"))
        lines.append(
            f"| {g} | {name} | {r['edges']:,} | {ms(gi)} | {ms(pi)} | "
            + (f"{pi / gi:.1f}×" if gi and pi else "–")
            + f" | {ms(gt)} | {ms(pt)} | "
            + (f"{pt / gt:.1f}×" if gt and pt else "–")
            + f" | {mb(gm)} | {mb(pm)} | "
            + (f"1/{pm / gm:.1f}" if gm and pm else "–")
            + " |"
        )
    floor = {mode: mem.get(("arxiv", "gat", "floor", mode)) for mode in ("infer", "train")}
    if floor["train"] is not None:
        lines += [
            "",
            "Floor (arxiv): the same model with each attention layer replaced by its projection "
            f"alone keeps {mb(floor['train'])} in a training step, {mb(floor['infer'])} in "
            "inference.",
        ]
    for op in ("gat", "gatv2"):
        plain = mem.get(("arxiv", op, "gatkit-plain", "train"))
        if plain is not None:
            pyg = mem.get(("arxiv", op, "pyg", "train"))
            ratio = f" (1/{pyg / plain:.1f} of PyG)" if pyg else ""
            lines.append(
                f"gatkit's {op} layers inside the plain model (F.dropout, F.elu instead of "
                f"gatkit's lean dropout) keep {mb(plain)} in an arxiv training step{ratio}."
            )
    lines += ["", "Inference peak memory (increase over setup):", ""]
    lines += ["| graph | layer | gatkit | PyG | ratio |", "|---|---|---:|---:|---:|"]
    for (g, op, impl, mode), v in mem.items():
        if impl == "gatkit" and mode == "infer":
            p = mem.get((g, op, "pyg", "infer"))
            ratio = f"1/{p / v:.1f}" if p and v else "–"
            lines.append(f"| {g} | {op} | {mb(v)} | {mb(p)} | {ratio} |")
    lines += ["", "Fitted exponent b of time ∝ E^b over the growth series:", ""]
    lines += [
        "| layer / library / figure | b, all sizes | b, 100 k–3 M edges | b, E ≥ 1 M |",
        "|---|---:|---:|---:|",
    ]

    def num(b):
        return "–" if b is None else f"{b:.2f}"

    for k, b in summary["exponents"].items():
        middle = summary.get("exponents_100k_to_3M_edges", {}).get(k)
        lines.append(
            f"| {k} | {num(b)} | {num(middle)} | {num(summary['exponents_from_1M_edges'].get(k))} |"
        )
    lines += ["", "Largest growth-series graph (degree 10) that trains within 24 GiB (fit):", ""]
    lines += ["| layer / library | bytes per edge | max E | max N |", "|---|---:|---:|---:|"]
    for k, v in summary["largest_trainable"].items():
        lines.append(
            f"| {k} | {v['bytes_per_edge']:.0f} | {v['max_edges'] / 1e6:.1f} M | "
            f"{v['max_nodes_at_degree_10'] / 1e6:.2f} M |"
        )
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small graphs only")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    parser.add_argument("--timeout", type=float, default=1800, help="seconds per job")
    parser.add_argument("--confirm", type=int, default=None, help="nodes of a real gatkit run")
    parser.add_argument("--only", default="", help="comma list of job kinds: time,memory")
    parser.add_argument("--graphs", default="", help="comma list: run only jobs on these graphs")
    parser.add_argument("--resume", action="store_true", help="skip jobs already in the log")
    parser.add_argument(
        "--masks",
        choices=("torch", "philox"),
        default=None,
        help="gatkit's dropout-mask generator (gatkit.ops.set_mask_generator; default philox)",
    )
    parser.add_argument(
        "--allocator",
        choices=("glibc", "keep", "thp", "huge-pages", "as-shipped"),
        default="glibc",
        help="glibc's default policy; keep: timing runs keep freed memory for reuse "
        "(gatkit.train.keep_freed_memory) in both libraries, memory runs use glibc's; "
        "thp: every worker runs with GLIBC_TUNABLES=glibc.malloc.hugetlb=1; huge-pages: "
        "gatkit's huge-page allocator (gatkit.train.use_huge_pages) in every worker, for "
        "both libraries; as-shipped: that allocator for gatkit's calls alone, as gatkit train "
        "runs, PyG with glibc's default",
    )
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.masks is not None:
        os.environ["GATKIT_MASKS"] = args.masks  # read by gatkit in every worker process

    if not args.worker:
        os.environ["GATKIT_BENCH_ALLOCATOR"] = args.allocator  # read by every worker
        if args.allocator == "thp":  # read by glibc when each worker process starts
            tunables = os.environ.get("GLIBC_TUNABLES", "")
            os.environ["GLIBC_TUNABLES"] = ":".join(
                t for t in (tunables, "glibc.malloc.hugetlb=1") if t
            )
    if args.worker:
        job = json.loads(args.worker)
        if job["kind"] == "time":
            out = worker_time(job["graph"], job["op"], job["impls"], job["repeats"])
        else:
            out = worker_memory(job["graph"], job["op"], job["impl"], job["mode"])
        print(json.dumps(out))
        return 0

    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    log = out_dir / ("quick.jsonl" if args.quick else "results.jsonl")
    done: list[dict] = []
    if args.resume and log.exists():
        done = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
    done_jobs = {json.dumps(r["job"], sort_keys=True) for r in done if "error" not in r}
    kinds = set(args.only.split(",")) if args.only else {"time", "memory"}
    graphs = set(args.graphs.split(",")) if args.graphs else None
    jobs = [
        j
        for j in plan(args.quick, args.confirm)
        if j["kind"] in kinds and (graphs is None or j["graph"] in graphs)
    ]
    for job in jobs:
        if json.dumps(job, sort_keys=True) in done_jobs:
            continue
        print(f"{time.strftime('%H:%M:%S')} {job}", flush=True)
        result = run_job(job, args.timeout)
        done.append(result)
        with log.open("a") as f:
            f.write(json.dumps(result) + "\n")
    summary = summarise(done)
    stem = "quick" if args.quick else "results"
    (out_dir / f"{stem}.json").write_text(json.dumps({"results": done, **summary}, indent=1))
    table = markdown(done, summary)
    (out_dir / f"{stem}.md").write_text(table)
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
