"""Adversarial random graphs shared by the operator tests.

Every generated graph has isolated destination nodes, duplicate edges and existing
self-loops unless told otherwise; bipartite graphs have different source and target sets.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass
class GraphCase:
    """One test graph: features of both sides, the edge list and optional edge features."""

    x_src: Tensor
    x_dst: Tensor
    edge_index: Tensor
    edge_attr: Tensor | None
    bipartite: bool

    @property
    def x(self) -> Tensor | tuple[Tensor, Tensor]:
        """What a layer takes: one tensor, or the (source, target) pair."""
        return (self.x_src, self.x_dst) if self.bipartite else self.x_src


def random_graph_case(
    seed: int,
    num_src: int = 12,
    num_dst: int | None = None,
    in_src: int = 5,
    in_dst: int | None = None,
    num_edges: int = 40,
    edge_dim: int | None = None,
    isolated: int = 3,
    duplicates: int = 6,
    self_loops: int = 3,
    unique_pairs: bool = False,
    dtype: torch.dtype = torch.float64,
) -> GraphCase:
    """A random graph with ``isolated`` destination nodes that have no incoming edge.

    ``duplicates`` edges are repeated and ``self_loops`` loops ``i -> i`` are present before
    any layer processing. With ``unique_pairs`` every (j, i) pair occurs at most once
    (needed where the dense reference stores one edge feature per pair).
    """
    generator = torch.Generator().manual_seed(seed)
    bipartite = num_dst is not None
    num_dst = num_dst if num_dst is not None else num_src
    in_dst = in_dst if in_dst is not None else in_src
    reachable = num_dst - isolated  # destinations num_dst-isolated.. get no edge
    src = torch.randint(0, num_src, (num_edges,), generator=generator)
    dst = torch.randint(0, reachable, (num_edges,), generator=generator)
    loops = torch.arange(min(self_loops, reachable, num_src))
    src = torch.cat([src, loops, src[:duplicates]])
    dst = torch.cat([dst, loops, dst[:duplicates]])
    edge_index = torch.stack([src, dst])
    if unique_pairs:
        pairs = sorted({(j, i) for j, i in edge_index.t().tolist()})
        edge_index = torch.tensor(pairs, dtype=torch.long).t().reshape(2, -1)
    order = torch.randperm(edge_index.size(1), generator=generator)
    edge_index = edge_index[:, order]
    x_src = torch.randn(num_src, in_src, generator=generator, dtype=dtype)
    x_dst = torch.randn(num_dst, in_dst, generator=generator, dtype=dtype) if bipartite else x_src
    edge_attr = None
    if edge_dim is not None:
        edge_attr = torch.randn(edge_index.size(1), edge_dim, generator=generator, dtype=dtype)
    return GraphCase(x_src, x_dst, edge_index, edge_attr, bipartite)


def max_relative_error(actual: Tensor, expected: Tensor) -> float:
    """``max|actual - expected| / max|expected|`` (0 when both are empty or all zero)."""
    if expected.numel() == 0:
        return 0.0
    scale = expected.abs().max().item()
    diff = (actual - expected).abs().max().item()
    return diff / scale if scale > 0 else diff


def assert_relative(actual: Tensor, expected: Tensor, tolerance: float, what: str) -> None:
    """Fail with the measured error when ``actual`` and ``expected`` differ beyond tolerance."""
    if actual.shape != expected.shape:
        raise AssertionError(f"{what}: shape {tuple(actual.shape)} != {tuple(expected.shape)}")
    error = max_relative_error(actual, expected)
    record = os.environ.get("GATKIT_AGREEMENT_LOG")  # optional: collect figures for reports
    if record:
        with open(record, "a") as log:
            log.write(json.dumps({"what": what, "tolerance": tolerance, "error": error}) + "\n")
    if not error <= tolerance:
        raise AssertionError(f"{what}: relative error {error:.3e} > {tolerance:.0e}")
