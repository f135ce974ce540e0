"""Checks of user input, run once at the public boundary before any computation.

Every check raises :class:`gatkit.errors.GraphInputError` with a message that names the
argument, the expected value and the actual value. No ``assert`` is used: these checks must
survive ``python -O``.
"""

from __future__ import annotations

import torch
from torch import Tensor

from gatkit.errors import GraphInputError


def all_finite(t: Tensor) -> bool:
    """Whether every entry is finite: one sum (NaN and ±inf make it non-finite), and the
    element-wise test only when the sum is not finite (it may overflow on finite values)."""
    if t.numel() == 0:
        return True
    with torch.no_grad():
        if bool(torch.isfinite(t.sum())):
            return True
        return bool(torch.isfinite(t).all())


def check_features(x: object, name: str, expected_width: int | None) -> Tensor:
    """Return ``x`` after checking it is a finite 2-D floating tensor of the expected width."""
    if not isinstance(x, Tensor):
        raise GraphInputError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.dim() != 2:
        raise GraphInputError(
            f"{name} must have shape [num_nodes, channels] (2-D), got shape {tuple(x.shape)}"
        )
    if not x.is_floating_point():
        raise GraphInputError(f"{name} must have a floating dtype, got {x.dtype}")
    if expected_width is not None and x.size(1) != expected_width:
        raise GraphInputError(
            f"{name} has {x.size(1)} channels per node but the layer was built with "
            f"in_channels={expected_width}"
        )
    if not all_finite(x):
        bad_rows = (~torch.isfinite(x)).any(dim=1).nonzero().flatten()[:5].tolist()
        raise GraphInputError(
            f"{name} contains NaN or infinite values (first rows affected: {bad_rows})"
        )
    return x


def check_edge_index(edge_index: object, num_src: int, num_dst: int) -> Tensor:
    """Return ``edge_index`` as int64 after checking shape ``[2, E]`` and index ranges.

    Row 0 holds source nodes ``j`` (must lie in ``[0, num_src)``), row 1 destination
    nodes ``i`` (must lie in ``[0, num_dst)``).
    """
    if not isinstance(edge_index, Tensor):
        raise GraphInputError(
            f"edge_index must be a torch.Tensor of shape [2, E], got {type(edge_index).__name__}"
        )
    if edge_index.is_floating_point() or edge_index.is_complex() or edge_index.dtype == torch.bool:
        raise GraphInputError(
            f"edge_index must have an integer dtype (torch.long), got {edge_index.dtype}"
        )
    if edge_index.dim() != 2 or edge_index.size(0) != 2:
        raise GraphInputError(
            f"edge_index must have shape [2, E] (sources in row 0, destinations in row 1), "
            f"got shape {tuple(edge_index.shape)}"
        )
    edge_index = edge_index.long()
    if edge_index.size(1) == 0:
        return edge_index
    for row, role, limit in ((0, "source", num_src), (1, "destination", num_dst)):
        lo = int(edge_index[row].min())
        hi = int(edge_index[row].max())
        if lo < 0:
            raise GraphInputError(
                f"edge_index[{row}] ({role} nodes) contains negative index {lo}; "
                f"expected values in [0, {limit})"
            )
        if hi >= limit:
            raise GraphInputError(
                f"edge_index[{row}] ({role} nodes) contains index {hi} but there are only "
                f"{limit} {role} nodes; expected values in [0, {limit})"
            )
    return edge_index


def check_edge_attr(edge_attr: object, num_edges: int, edge_dim: int | None) -> Tensor:
    """Return ``edge_attr`` as ``[E, edge_dim]`` after checking it fits the edges and layer."""
    if edge_dim is None:
        raise GraphInputError(
            "edge_attr was given but the layer was built without edge features "
            "(edge_dim=None); build it with edge_dim=<number of edge channels>"
        )
    if not isinstance(edge_attr, Tensor):
        raise GraphInputError(f"edge_attr must be a torch.Tensor, got {type(edge_attr).__name__}")
    if not edge_attr.is_floating_point():
        raise GraphInputError(f"edge_attr must have a floating dtype, got {edge_attr.dtype}")
    if edge_attr.dim() == 1:
        edge_attr = edge_attr.unsqueeze(-1)
    if edge_attr.dim() != 2:
        raise GraphInputError(
            f"edge_attr must have shape [E, edge_dim], got shape {tuple(edge_attr.shape)}"
        )
    if edge_attr.size(0) != num_edges:
        raise GraphInputError(
            f"edge_attr has {edge_attr.size(0)} rows but edge_index has {num_edges} edges; "
            "expected one row per edge"
        )
    if edge_attr.size(1) != edge_dim:
        raise GraphInputError(
            f"edge_attr has {edge_attr.size(1)} channels per edge but the layer was built with "
            f"edge_dim={edge_dim}"
        )
    if not all_finite(edge_attr):
        raise GraphInputError("edge_attr contains NaN or infinite values")
    return edge_attr
