"""Seeds sampled per second: gatkit's neighbour sampler against what PyG can run here.

One command (from the repository root)::

    .venv/bin/python benchmarks/sampler.py              # writes results/scale/sampler.json
    .venv/bin/python benchmarks/sampler.py --batches 5  # quicker

Graph: the ogbn-arxiv-sized random graph (169,343 nodes, 1,166,243 directed edges, 128
features; :func:`gatkit.data.random_node_graph.random_node_graph`). Seeds: the training
nodes, shuffled, in batches of 1,024. Each figure is seeds per second over ``--batches``
batches after one warm-up batch, including gathering the input features of each batch
(``x[input_nodes]``), which PyG's loader does too. Contenders, in one process and on the
same seed batches, alternating per round so that load from other processes hits all alike:

- ``gatkit`` sampled, fan-outs 15,10 (``NeighborSampler`` + ``NeighborLoader``);
- ``gatkit`` exact 2-hop neighbourhood (fan-outs -1,-1, the blocks of layer-wise inference);
- PyG ``NeighborLoader`` with ``num_neighbors=[15, 10]`` (needs ``pyg-lib`` or
  ``torch-sparse``; when neither imports, the error is recorded instead of a number);
- PyG ``k_hop_subgraph`` (2 hops, exact, no sampling): the part of PyG's sampling code that
  runs on plain PyTorch, compared with gatkit's exact 2-hop blocks.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch

from gatkit.data.random_node_graph import ARXIV_SIZE, random_node_graph
from gatkit.data.sampling import InNeighbourCSR, NeighborSampler

FANOUTS = [15, 10]


def _time_batches(run: Callable[[torch.Tensor], None], batches: list[torch.Tensor]) -> float:
    """Seconds to run ``run`` on every batch (after one warm-up call)."""
    run(batches[0])
    start = time.perf_counter()
    for seeds in batches:
        run(seeds)
    return time.perf_counter() - start


def _pyg_neighbor_loader(graph, batch_size: int):
    """A function running PyG's NeighborLoader on given seeds, or the reason it cannot."""
    try:
        import torch_geometric
        from torch_geometric.data import Data
        from torch_geometric.loader import NeighborLoader

        data = Data(x=graph.x, y=graph.y, edge_index=graph.edge_index)
        loader = NeighborLoader(
            data, num_neighbors=FANOUTS[::-1], batch_size=batch_size, input_nodes=None
        )
        probe = loader.collate_fn([0])  # raises ImportError without pyg-lib / torch-sparse
        del probe
    except ImportError as error:
        return None, f"{type(error).__name__}: {error}"

    def run(seeds: torch.Tensor) -> None:
        batch = loader.collate_fn(seeds.tolist())
        _ = batch.x.sum()

    return run, f"torch_geometric {torch_geometric.__version__}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=20, help="timed batches per round")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds")
    parser.add_argument("--batch-size", type=int, default=1024)
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--out", default="results/scale/sampler.json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    start = time.perf_counter()
    graph = random_node_graph(*ARXIV_SIZE, seed=0)
    generate_seconds = time.perf_counter() - start
    start = time.perf_counter()
    csr = InNeighbourCSR(graph.edge_index, graph.num_nodes)
    csr_seconds = time.perf_counter() - start
    sampled = NeighborSampler(graph.edge_index, graph.num_nodes, FANOUTS, csr=csr)
    exact = NeighborSampler(graph.edge_index, graph.num_nodes, [-1, -1], csr=csr)
    generator = torch.Generator().manual_seed(0)
    train = graph.train_mask.nonzero().flatten()
    order = train[torch.randperm(train.numel(), generator=generator)]
    batches = list(order[: args.batches * args.batch_size].split(args.batch_size))

    from torch_geometric.utils import k_hop_subgraph

    def gatkit_sampled(seeds: torch.Tensor) -> None:
        blocks = sampled.sample(seeds, generator)
        _ = graph.x.index_select(0, blocks[0].src_nodes).sum()

    def gatkit_exact(seeds: torch.Tensor) -> None:
        blocks = exact.sample(seeds)
        _ = graph.x.index_select(0, blocks[0].src_nodes).sum()

    def pyg_k_hop(seeds: torch.Tensor) -> None:
        subset, _, _, _ = k_hop_subgraph(seeds, 2, graph.edge_index, num_nodes=graph.num_nodes)
        _ = graph.x.index_select(0, subset).sum()

    contenders: dict[str, Callable[[torch.Tensor], None]] = {
        "gatkit_neighbor_15_10": gatkit_sampled,
        "gatkit_exact_2hop": gatkit_exact,
        "pyg_k_hop_subgraph_exact_2hop": pyg_k_hop,
    }
    pyg_run, pyg_note = _pyg_neighbor_loader(graph, args.batch_size)
    if pyg_run is not None:
        contenders["pyg_neighbor_loader_15_10"] = pyg_run

    seconds: dict[str, list[float]] = {name: [] for name in contenders}
    for _ in range(args.rounds):
        for name, run in contenders.items():
            seconds[name].append(_time_batches(run, batches))
    seeds_total = sum(b.numel() for b in batches)
    figures = {
        name: {
            "seeds_per_second_median": seeds_total / statistics.median(values),
            "seeds_per_second_each_round": [seeds_total / v for v in values],
        }
        for name, values in seconds.items()
    }
    blocks = sampled.sample(batches[0], torch.Generator().manual_seed(0))
    result = {
        "graph": {
            "nodes": graph.num_nodes,
            "edges": graph.num_edges,
            "generator_seconds": generate_seconds,
            "csr_build_seconds": csr_seconds,
        },  # fmt: skip
        "batch_size": args.batch_size,
        "batches_per_round": len(batches),
        "rounds": args.rounds,
        "fanouts": FANOUTS,
        "first_batch_blocks": [repr(b) for b in blocks],
        "results": figures,
        "pyg_neighbor_loader": pyg_note if pyg_run is not None else f"did not run: {pyg_note}",
        "torch_threads": torch.get_num_threads(),
        "torch_version": torch.__version__,
        "machine": platform.machine(),
        "load_average_at_end": list(__import__("os").getloadavg()),
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
