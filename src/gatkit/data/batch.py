r"""Mini-batches of many small graphs as one disjoint union.

:func:`collate` stacks ``G`` graphs into one big graph with no edge between them: node
features are concatenated, and the edge ids of graph ``g`` are shifted by the number of nodes
before it,

.. math::
    \text{ptr}_g = \sum_{h < g} N_h, \qquad
    \text{edge\_index}^{\text{batch}} = [\, \text{edge\_index}^{(0)} + \text{ptr}_0 \;\|\;
    \cdots \;\|\; \text{edge\_index}^{(G-1)} + \text{ptr}_{G-1} \,].

``batch[n]`` is the graph of node ``n``; a message-passing layer run on the union computes
exactly what it computes on each graph alone, and a readout pools per graph with
``batch`` as the segment index (:mod:`gatkit.nn.pooling`). :meth:`GraphBatch.unbatch`
inverts :func:`collate`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor

from gatkit.data.graph import MASK_NAMES, Graph
from gatkit.errors import GraphInputError

__all__ = ["GraphBatch", "GraphLoader", "collate"]

#: Optional per-node and per-edge tensor fields carried through a batch (when a graph class
#: has them, e.g. :class:`gatkit.data.tu.TUGraph`).
NODE_FIELDS = ("node_label", *MASK_NAMES)
EDGE_FIELDS = ("edge_attr", "edge_label")


@dataclass(repr=False, eq=False)
class GraphBatch:
    """``G`` graphs as one disjoint union.

    Attributes:
        x: ``[N, F]`` node features of all graphs, graph by graph.
        edge_index: ``[2, E]`` edges with node ids shifted by ``ptr`` of their graph.
        batch: ``[N]`` int64 graph id ``0 … G - 1`` of every node.
        ptr: ``[G + 1]`` int64; the nodes of graph ``g`` are ``ptr[g] … ptr[g+1] - 1``.
        edge_ptr: ``[G + 1]`` int64; the edges of graph ``g`` are columns
            ``edge_ptr[g] … edge_ptr[g+1] - 1``.
        y: concatenated labels (``[G]`` for one label per graph), or ``None``.
        y_ptr: ``[G + 1]`` int64 offsets of each graph's entries in ``y``, or ``None``.
        edge_attr: ``[E, D]`` or ``None``; edge_label: ``[E]`` int64 or ``None``.
        node_fields: other per-node tensors (``node_label``, masks), concatenated.
        names: each graph's ``name``.
        graph_type: the class of the collated graphs (what :meth:`unbatch` builds).
    """

    x: Tensor
    edge_index: Tensor
    batch: Tensor
    ptr: Tensor
    edge_ptr: Tensor
    y: Tensor | None = None
    y_ptr: Tensor | None = None
    edge_attr: Tensor | None = None
    edge_label: Tensor | None = None
    node_fields: dict[str, Tensor] = field(default_factory=dict)
    names: tuple[str, ...] = ()
    graph_type: type = Graph

    @property
    def num_graphs(self) -> int:
        """Number of graphs ``G``."""
        return int(self.ptr.numel()) - 1

    @property
    def num_nodes(self) -> int:
        """Total number of nodes ``N``."""
        return int(self.x.size(0))

    @property
    def num_edges(self) -> int:
        """Total number of edges ``E``."""
        return int(self.edge_index.size(1))

    def to(self, device: torch.device | str) -> GraphBatch:
        """A batch whose tensors are on ``device`` (``self`` when they already are)."""
        if self.x.device == torch.device(device):
            return self
        moved = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, Tensor):
                moved[f.name] = value.to(device)
        moved["node_fields"] = {k: v.to(device) for k, v in self.node_fields.items()}
        return dataclasses.replace(self, **moved)

    def unbatch(self) -> list[Graph]:
        """The graphs of the batch, each with local node ids (inverse of :func:`collate`)."""
        ptr = self.ptr.tolist()
        edge_ptr = self.edge_ptr.tolist()
        y_ptr = self.y_ptr.tolist() if self.y_ptr is not None else None
        graphs = []
        for g in range(self.num_graphs):
            n0, n1, e0, e1 = ptr[g], ptr[g + 1], edge_ptr[g], edge_ptr[g + 1]
            fields: dict[str, object] = {
                "x": self.x[n0:n1],
                "edge_index": self.edge_index[:, e0:e1] - n0,
                "name": self.names[g] if self.names else "",
            }
            if self.y is not None and y_ptr is not None:
                fields["y"] = self.y[y_ptr[g] : y_ptr[g + 1]]
            if self.edge_attr is not None:
                fields["edge_attr"] = self.edge_attr[e0:e1]
            if self.edge_label is not None:
                fields["edge_label"] = self.edge_label[e0:e1]
            for key, value in self.node_fields.items():
                fields[key] = value[n0:n1]
            graphs.append(self.graph_type(**fields))
        return graphs

    def __repr__(self) -> str:
        extra = "" if self.edge_attr is None else f", edge_attr={tuple(self.edge_attr.shape)}"
        return (
            f"GraphBatch(graphs={self.num_graphs}, nodes={self.num_nodes}, "
            f"edges={self.num_edges}, x={tuple(self.x.shape)}{extra})"
        )


def _optional(graphs: Sequence[Graph], key: str) -> list[Tensor] | None:
    """Every graph's ``key`` field, or ``None`` when no graph has it; refuse a mixture."""
    values = [getattr(g, key, None) for g in graphs]
    present = [v is not None for v in values]
    if not any(present):
        return None
    if not all(present):
        missing = present.index(False)
        raise GraphInputError(
            f"collate: graph {missing} has {key}=None but graph {present.index(True)} has "
            f"{key}; every graph of a batch needs the same fields"
        )
    return values  # type: ignore[return-value]


def collate(graphs: Sequence[Graph]) -> GraphBatch:
    """Stack ``graphs`` into one :class:`GraphBatch` (their disjoint union).

    Every graph must be of the same class, have the same feature width and the same set of
    optional fields. Graph ``g``'s edges are shifted by ``ptr[g]``, the number of nodes
    of the graphs before it.
    """
    if len(graphs) == 0:
        raise GraphInputError("collate: expected at least one graph, got an empty sequence")
    graph_type = type(graphs[0])
    for g, graph in enumerate(graphs):
        if not isinstance(graph, Graph):
            raise GraphInputError(
                f"collate: graph {g} must be a gatkit Graph, got {type(graph).__name__}"
            )
        if type(graph) is not graph_type:
            raise GraphInputError(
                f"collate: graph {g} is a {type(graph).__name__} but graph 0 is a "
                f"{graph_type.__name__}; a batch holds one class of graph"
            )
        if graph.x.dim() != 2 or graph.x.size(1) != graphs[0].x.size(1):
            raise GraphInputError(
                f"collate: graph {g} has x of shape {tuple(graph.x.shape)} but graph 0 has "
                f"{graphs[0].x.size(1)} features per node"
            )
    nodes = torch.tensor([g.num_nodes for g in graphs], dtype=torch.long)
    edges = torch.tensor([g.num_edges for g in graphs], dtype=torch.long)
    zero = torch.zeros(1, dtype=torch.long)
    ptr = torch.cat([zero, nodes.cumsum(0)])  # [G + 1]
    edge_ptr = torch.cat([zero, edges.cumsum(0)])  # [G + 1]
    offsets = ptr[:-1].repeat_interleave(edges)  # [E]
    edge_index = torch.cat([g.edge_index for g in graphs], dim=1) + offsets  # [2, E]
    batch = torch.arange(len(graphs)).repeat_interleave(nodes)  # [N]

    y = y_ptr = None
    ys = _optional(graphs, "y")
    if ys is not None:
        y = torch.cat([v.reshape(-1) if v.dim() == 0 else v for v in ys])
        sizes = torch.tensor([1 if v.dim() == 0 else v.size(0) for v in ys], dtype=torch.long)
        y_ptr = torch.cat([zero, sizes.cumsum(0)])
    edge_values = {}
    for key in EDGE_FIELDS:
        values = _optional(graphs, key)
        edge_values[key] = None if values is None else torch.cat(values, dim=0)
    node_fields = {}
    for key in NODE_FIELDS:
        values = _optional(graphs, key)
        if values is not None:
            node_fields[key] = torch.cat(values, dim=0)
    return GraphBatch(
        x=torch.cat([g.x for g in graphs], dim=0),
        edge_index=edge_index,
        batch=batch,
        ptr=ptr,
        edge_ptr=edge_ptr,
        y=y,
        y_ptr=y_ptr,
        edge_attr=edge_values["edge_attr"],
        edge_label=edge_values["edge_label"],
        node_fields=node_fields,
        names=tuple(g.name for g in graphs),
        graph_type=graph_type,
    )


class GraphLoader:
    """Iterate over ``graphs`` in mini-batches of :class:`GraphBatch`.

    With ``shuffle`` the order is a fresh permutation every epoch (every ``iter``), drawn
    from a generator seeded once with ``seed``: the sequence of epochs is reproducible.

    Args:
        graphs: the graphs (any sequence, e.g. a list or a :class:`~gatkit.data.tu.TUDataset`).
        batch_size: graphs per batch (the last batch may be smaller unless ``drop_last``).
        shuffle: permute the graphs every epoch.
        seed: seed of the permutations.
        drop_last: skip a last, incomplete batch.
    """

    def __init__(
        self,
        graphs: Sequence[Graph],
        batch_size: int = 32,
        shuffle: bool = False,
        seed: int = 0,
        drop_last: bool = False,
    ) -> None:
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise GraphInputError(f"batch_size must be a positive int, got {batch_size!r}")
        if len(graphs) == 0:
            raise GraphInputError("GraphLoader: graphs is empty; expected at least one graph")
        self.graphs = list(graphs)
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.drop_last = drop_last
        self._rng = np.random.default_rng(seed)

    def __len__(self) -> int:
        full, rest = divmod(len(self.graphs), self.batch_size)
        return full + (1 if rest and not self.drop_last else 0)

    def __iter__(self) -> Iterator[GraphBatch]:
        count = len(self.graphs)
        order = self._rng.permutation(count) if self.shuffle else np.arange(count)
        for start in range(0, count, self.batch_size):
            chosen = order[start : start + self.batch_size]
            if self.drop_last and len(chosen) < self.batch_size:
                return
            yield collate([self.graphs[i] for i in chosen])
