"""The graph container every gatkit loader returns and every model consumes.

A :class:`Graph` is a plain dataclass of tensors: node features ``x [N, F]``, a directed edge
list ``edge_index [2, E]`` (row 0 the source node ``j``, row 1 the target node ``i``, so a
message flows ``j -> i``), and optional labels, edge features and node masks. It is used for
a single node-classification graph (Cora) as well as for one graph of a graph-level dataset
(then ``y`` holds the graph label(s)).

Conversions to and from PyTorch Geometric, networkx and scipy.sparse are provided; the two
optional libraries are imported only inside the functions that need them.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import Tensor

from gatkit.errors import GraphInputError
from gatkit.validation import check_edge_index, check_features

if TYPE_CHECKING:  # pragma: no cover - only for type checkers
    import networkx
    import scipy.sparse
    import torch_geometric.data

__all__ = ["Graph"]

#: Names of the optional boolean node masks, in the order they are reported.
MASK_NAMES = ("train_mask", "val_mask", "test_mask")


#: pip distribution of each optional top-level module.
_PIP_NAMES = {"torch_geometric": "torch-geometric", "networkx": "networkx"}


def _require(module: str, caller: str) -> Any:
    """Import ``module`` or raise an ImportError naming ``caller`` and how to install it."""
    import importlib

    top = module.split(".")[0]
    try:
        return importlib.import_module(module)
    except ImportError as error:
        raise ImportError(
            f"{caller} needs the optional package '{top}', which is not installed: "
            f"pip install {_PIP_NAMES.get(top, top)}"
        ) from error


@dataclass(repr=False, eq=False)
class Graph:
    """One graph: node features, directed edges, optional labels, edge features and masks.

    Attributes:
        x: node features ``[N, F]``, floating point.
        edge_index: ``[2, E]`` int64; ``edge_index[0]`` holds source nodes ``j``,
            ``edge_index[1]`` target nodes ``i`` (the edge is ``j -> i``). An undirected
            edge appears once in each direction.
        y: node labels ``[N]`` int64 with ``-1`` for unlabelled nodes, or graph label(s)
            ``[G]``.
        edge_attr: edge features ``[E, D]``, one row per column of ``edge_index``.
        train_mask, val_mask, test_mask: ``[N]`` bool node masks.
        name: a free-form name (the dataset's, for loaders).
    """

    x: Tensor
    edge_index: Tensor
    y: Tensor | None = None
    edge_attr: Tensor | None = None
    train_mask: Tensor | None = None
    val_mask: Tensor | None = None
    test_mask: Tensor | None = None
    name: str = ""

    # ------------------------------------------------------------------ sizes
    @property
    def num_nodes(self) -> int:
        """Number of nodes ``N`` (rows of ``x``)."""
        return int(self.x.size(0))

    @property
    def num_edges(self) -> int:
        """Number of directed edges ``E`` (columns of ``edge_index``)."""
        return int(self.edge_index.size(1))

    @property
    def num_features(self) -> int:
        """Number of node features ``F`` (columns of ``x``)."""
        return int(self.x.size(1)) if self.x.dim() > 1 else 1

    @property
    def num_edge_features(self) -> int:
        """Number of edge features ``D`` (0 without ``edge_attr``)."""
        if self.edge_attr is None:
            return 0
        return int(self.edge_attr.size(1)) if self.edge_attr.dim() > 1 else 1

    @property
    def num_classes(self) -> int:
        """``max(y) + 1`` over the labelled entries (``y >= 0``); 0 without labels."""
        if self.y is None or self.y.numel() == 0:
            return 0
        labelled = self.y[self.y >= 0]
        return int(labelled.max()) + 1 if labelled.numel() > 0 else 0

    def __repr__(self) -> str:
        parts = [f"num_nodes={self.num_nodes}", f"num_edges={self.num_edges}"]
        parts.append(f"num_features={self.num_features}")
        if self.y is not None:
            parts.append(f"num_classes={self.num_classes}")
        if self.edge_attr is not None:
            parts.append(f"num_edge_features={self.num_edge_features}")
        for mask_name in MASK_NAMES:
            mask = getattr(self, mask_name)
            if mask is not None:
                parts.append(f"{mask_name}={int(mask.sum())}")
        name = f"name={self.name!r}, " if self.name else ""
        return f"Graph({name}{', '.join(parts)})"

    # ------------------------------------------------------------- transforms
    def tensors(self) -> dict[str, Tensor]:
        """The tensor fields that are set, by name."""
        return {
            field.name: value
            for field in dataclasses.fields(self)
            if isinstance(value := getattr(self, field.name), Tensor)
        }

    def to(self, device: torch.device | str, non_blocking: bool = False) -> Graph:
        """A new Graph whose tensors are on ``device`` (``self`` is left unchanged)."""
        moved = {
            name: value.to(device, non_blocking=non_blocking)
            for name, value in self.tensors().items()
        }
        return dataclasses.replace(self, **moved)

    def validate(self) -> Graph:
        """Check every field's type, shape, dtype and value range; return ``self``.

        Raises :class:`GraphInputError` naming the field, the expected and the actual value:
        ``x`` must be a finite 2-D floating tensor; ``edge_index`` an int64 ``[2, E]`` tensor
        with indices in ``[0, N)``; ``edge_attr`` ``[E, D]`` floating; ``y`` 1-D, integer
        labels ``>= -1``; each mask a bool ``[N]`` tensor. Every tensor must be on ``x``'s
        device.
        """
        check_features(self.x, "Graph.x", None)
        num_nodes = self.num_nodes
        if isinstance(self.edge_index, Tensor) and self.edge_index.dtype != torch.long:
            raise GraphInputError(
                f"Graph.edge_index must have dtype torch.int64, got {self.edge_index.dtype}"
            )
        check_edge_index(self.edge_index, num_nodes, num_nodes)
        device = self.x.device
        for name, value in self.tensors().items():
            if value.device != device:
                raise GraphInputError(
                    f"Graph.{name} is on {value.device} but Graph.x is on {device}; "
                    "move the whole graph with Graph.to(device)"
                )
        if self.edge_attr is not None:
            self._validate_edge_attr()
        if self.y is not None:
            self._validate_y()
        for mask_name in MASK_NAMES:
            mask = getattr(self, mask_name)
            if mask is None:
                continue
            if not isinstance(mask, Tensor) or mask.dtype != torch.bool:
                actual = mask.dtype if isinstance(mask, Tensor) else type(mask).__name__
                raise GraphInputError(f"Graph.{mask_name} must be a bool tensor, got {actual}")
            if tuple(mask.shape) != (num_nodes,):
                raise GraphInputError(
                    f"Graph.{mask_name} must have shape [num_nodes] = ({num_nodes},), "
                    f"got {tuple(mask.shape)}"
                )
        if not isinstance(self.name, str):
            raise GraphInputError(f"Graph.name must be a str, got {type(self.name).__name__}")
        return self

    def _validate_edge_attr(self) -> None:
        edge_attr = self.edge_attr
        if not isinstance(edge_attr, Tensor):
            raise GraphInputError(
                f"Graph.edge_attr must be a torch.Tensor, got {type(edge_attr).__name__}"
            )
        if edge_attr.dim() != 2:
            raise GraphInputError(
                f"Graph.edge_attr must have shape [E, D] (2-D), got {tuple(edge_attr.shape)}"
            )
        if edge_attr.size(0) != self.num_edges:
            raise GraphInputError(
                f"Graph.edge_attr has {edge_attr.size(0)} rows but edge_index has "
                f"{self.num_edges} edges; expected one row per edge"
            )

    def _validate_y(self) -> None:
        y = self.y
        if not isinstance(y, Tensor):
            raise GraphInputError(f"Graph.y must be a torch.Tensor, got {type(y).__name__}")
        if y.dim() == 0 or (y.dim() != 1 and not y.is_floating_point()):
            raise GraphInputError(
                f"Graph.y must have shape [N] (node labels) or [G] (graph labels), got "
                f"{tuple(y.shape)}"
            )
        if y.dtype == torch.bool or y.is_complex():
            raise GraphInputError(f"Graph.y must be int64 labels, got dtype {y.dtype}")
        if not y.is_floating_point() and y.numel() > 0 and int(y.min()) < -1:
            raise GraphInputError(
                f"Graph.y holds label {int(y.min())}; expected class indices >= 0, or -1 "
                "for an unlabelled node"
            )
        has_masks = any(getattr(self, name) is not None for name in MASK_NAMES)
        if has_masks and y.size(0) != self.num_nodes:
            raise GraphInputError(
                f"Graph.y has {y.size(0)} entries but the graph has node masks and "
                f"{self.num_nodes} nodes; node labels must have shape [num_nodes]"
            )

    # ---------------------------------------------------------- PyG interop
    @classmethod
    def from_pyg(cls, data: torch_geometric.data.Data, name: str = "") -> Graph:
        """A Graph with the ``x``, ``edge_index``, ``y``, ``edge_attr`` and masks of ``data``.

        ``data`` is a ``torch_geometric.data.Data``; fields it lacks stay ``None``. Raises
        :class:`GraphInputError` if ``data`` has no ``x`` or no ``edge_index``.
        """
        _require("torch_geometric", "Graph.from_pyg")
        fields: dict[str, Any] = {}
        for key in ("x", "edge_index", "y", "edge_attr", *MASK_NAMES):
            fields[key] = getattr(data, key, None)
        if fields["x"] is None:
            raise GraphInputError("Graph.from_pyg: data.x is None; a Graph needs node features")
        if fields["edge_index"] is None:
            raise GraphInputError("Graph.from_pyg: data.edge_index is None")
        fields["edge_index"] = fields["edge_index"].long()
        return cls(**fields, name=name or str(getattr(data, "name", "") or ""))

    def to_pyg(self) -> torch_geometric.data.Data:
        """A ``torch_geometric.data.Data`` holding this graph's tensors (shared, not copied)."""
        pyg_data = _require("torch_geometric.data", "Graph.to_pyg")
        return pyg_data.Data(**self.tensors())

    # ------------------------------------------------------ networkx interop
    @classmethod
    def from_networkx(
        cls,
        g: networkx.Graph,
        x: Tensor | None = None,
        y: Tensor | None = None,
        feature_key: str = "x",
        label_key: str = "y",
        edge_key: str | None = None,
        name: str = "",
    ) -> Graph:
        """A Graph with the nodes and edges of the networkx graph ``g``.

        Nodes are numbered ``0 … N-1`` in ``g.nodes`` order. A directed ``g`` gives one edge
        per arc; an undirected ``g`` gives both directions of every edge (a self-loop once).
        Features come from ``x``, else from the node attribute ``feature_key`` when every
        node has it, else a single constant feature 1 per node. Labels come from ``y``, else
        from the node attribute ``label_key`` when every node has it. Edge features come from
        the edge attribute ``edge_key`` when it is given. Node attributes ``train_mask``,
        ``val_mask``, ``test_mask`` present on every node become the masks.
        """
        _require("networkx", "Graph.from_networkx")
        nodes = list(g.nodes)
        index = {node: i for i, node in enumerate(nodes)}
        attrs = [g.nodes[node] for node in nodes]

        def node_values(key: str) -> list[Any] | None:
            if nodes and all(key in a for a in attrs):
                return [a[key] for a in attrs]
            return None

        if x is None:
            values = node_values(feature_key)
            if values is not None:
                rows = [torch.as_tensor(v, dtype=torch.float32).reshape(-1) for v in values]
                x = torch.stack(rows)
            else:
                x = torch.ones(len(nodes), 1)
        if y is None and (values := node_values(label_key)) is not None:
            y = torch.as_tensor(values)
        masks = {}
        for mask_name in MASK_NAMES:
            if (values := node_values(mask_name)) is not None:
                masks[mask_name] = torch.as_tensor(values, dtype=torch.bool)

        sources: list[int] = []
        targets: list[int] = []
        features: list[Any] = []
        undirected = not g.is_directed()
        for u, v, edge_data in g.edges(data=True):
            pairs = [(index[u], index[v])]
            if undirected and u != v:
                pairs.append((index[v], index[u]))
            for src, dst in pairs:
                sources.append(src)
                targets.append(dst)
                if edge_key is not None:
                    if edge_key not in edge_data:
                        raise GraphInputError(
                            f"Graph.from_networkx: edge ({u!r}, {v!r}) has no attribute "
                            f"edge_key={edge_key!r}"
                        )
                    features.append(edge_data[edge_key])
        edge_index = torch.tensor([sources, targets], dtype=torch.long).reshape(2, -1)
        edge_attr = None
        if edge_key is not None:
            width = 1
            rows = [torch.as_tensor(f, dtype=torch.float32).reshape(-1) for f in features]
            if rows:
                width = rows[0].numel()
            edge_attr = torch.stack(rows) if rows else torch.empty(0, width)
        return cls(x=x, edge_index=edge_index, y=y, edge_attr=edge_attr, name=name, **masks)

    def to_networkx(self, to_undirected: bool = False) -> networkx.Graph:
        """A networkx graph with nodes ``0 … N-1`` and this graph's edges and attributes.

        Returns an ``nx.DiGraph`` with one arc per column of ``edge_index`` (duplicates
        collapse), or an ``nx.Graph`` when ``to_undirected`` is true. Node attributes: ``x``
        (list of floats), ``y`` (node labels, when ``y`` has one entry per node) and the
        masks; edge attribute ``edge_attr`` (list of floats). Graph attribute ``name``.
        networkx lists edges grouped by source node, so ``from_networkx`` gives back the
        same edges in that order (the identical ``edge_index`` if it was sorted by source).
        """
        nx = _require("networkx", "Graph.to_networkx")
        g = nx.Graph() if to_undirected else nx.DiGraph()
        g.graph["name"] = self.name
        node_fields: dict[str, list[Any]] = {"x": self.x.detach().cpu().tolist()}
        if self.y is not None and self.y.size(0) == self.num_nodes:
            node_fields["y"] = self.y.detach().cpu().tolist()
        for mask_name in MASK_NAMES:
            mask = getattr(self, mask_name)
            if mask is not None:
                node_fields[mask_name] = mask.detach().cpu().tolist()
        for i in range(self.num_nodes):
            g.add_node(i, **{key: values[i] for key, values in node_fields.items()})
        src, dst = self.edge_index.detach().cpu().tolist()
        if self.edge_attr is not None:
            attr = self.edge_attr.detach().cpu().reshape(self.num_edges, -1).tolist()
            arcs = zip(src, dst, attr, strict=True)
            g.add_edges_from((j, i, {"edge_attr": a}) for j, i, a in arcs)
        else:
            g.add_edges_from(zip(src, dst, strict=True))
        return g

    # --------------------------------------------------------- scipy interop
    @classmethod
    def from_scipy(
        cls,
        matrix: scipy.sparse.spmatrix | scipy.sparse.sparray,
        x: Tensor | None = None,
        y: Tensor | None = None,
        edge_values: bool = False,
        name: str = "",
    ) -> Graph:
        """A Graph whose edges are the stored entries of the adjacency ``matrix``.

        Entry ``matrix[j, i]`` is the edge ``j -> i`` (row = source, column = target), the
        convention of PyG's ``from_scipy_sparse_matrix``; an undirected graph needs a
        symmetric matrix. Stored entries become edges whatever their value (explicit zeros
        included); with ``edge_values=True`` the values become ``edge_attr [E, 1]``. ``x``
        defaults to a single constant feature 1 per node.
        """
        import scipy.sparse as sp

        if not sp.issparse(matrix):
            raise GraphInputError(
                f"Graph.from_scipy: matrix must be a scipy.sparse matrix, got "
                f"{type(matrix).__name__}"
            )
        if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1]:
            raise GraphInputError(
                f"Graph.from_scipy: the adjacency matrix must be square [N, N], got {matrix.shape}"
            )
        coo = sp.coo_matrix(matrix)
        edge_index = torch.from_numpy(np.vstack([coo.row, coo.col]).astype(np.int64))
        edge_attr = None
        if edge_values:
            edge_attr = torch.from_numpy(np.asarray(coo.data, dtype=np.float32)).reshape(-1, 1)
        if x is None:
            x = torch.ones(matrix.shape[0], 1)
        elif x.size(0) != matrix.shape[0]:
            raise GraphInputError(
                f"Graph.from_scipy: x has {x.size(0)} rows but the adjacency matrix has "
                f"{matrix.shape[0]} nodes"
            )
        return cls(x=x, edge_index=edge_index, y=y, edge_attr=edge_attr, name=name)

    def to_scipy(self, format: str = "coo", edge_values: bool = False) -> scipy.sparse.spmatrix:
        """The ``[N, N]`` adjacency matrix with ``A[j, i] != 0`` for every edge ``j -> i``.

        ``format`` is ``"coo"`` (one stored entry per edge, duplicates kept) or ``"csr"``
        (duplicate edges summed). Values are 1, or the single-column ``edge_attr`` when
        ``edge_values`` is true.
        """
        import scipy.sparse as sp

        if format not in ("coo", "csr"):
            raise GraphInputError(f"Graph.to_scipy: format must be 'coo' or 'csr', got {format!r}")
        row, col = self.edge_index.detach().cpu().numpy()
        if edge_values:
            if self.edge_attr is None or self.num_edge_features != 1:
                raise GraphInputError(
                    "Graph.to_scipy(edge_values=True) needs edge_attr of shape [E, 1], got "
                    f"{None if self.edge_attr is None else tuple(self.edge_attr.shape)}"
                )
            values = self.edge_attr.detach().cpu().reshape(-1).numpy()
        else:
            values = np.ones(row.shape[0], dtype=np.float32)
        n = self.num_nodes
        adjacency = sp.coo_matrix((values, (row, col)), shape=(n, n))
        return adjacency.tocsr() if format == "csr" else adjacency
