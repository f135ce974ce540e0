r"""TU-format graph-classification datasets (Morris et al., *TUDataset*, 2020).

A TU dataset ``DS`` is a folder of comma-separated text files sharing global, 1-based node
ids (``n`` nodes, ``m`` directed edges, ``G`` graphs in total):

====================================  ========  ===============================================
file                                  lines     content of line ``k``
====================================  ========  ===============================================
``DS_A.txt``                          ``m``     ``row, col``: edge ``row -> col`` (both
                                                directions of an undirected edge are listed)
``DS_graph_indicator.txt``            ``n``     graph id (1-based) of node ``k``
``DS_graph_labels.txt``               ``G``     class label of graph ``k``
``DS_node_labels.txt`` (optional)     ``n``     integer label of node ``k``
``DS_edge_labels.txt`` (optional)     ``m``     integer label of edge ``k``
``DS_node_attributes.txt`` (opt.)     ``n``     comma-separated real attributes of node ``k``
``DS_edge_attributes.txt`` (opt.)     ``m``     comma-separated real attributes of edge ``k``
====================================  ========  ===============================================

:func:`load_tu` turns them into one :class:`TUGraph` per graph:

- ``x [N_g, L + A]``: the one-hot node label (``L`` label values) followed by the node
  attributes (``A`` columns); a constant 1 when the dataset has neither.
- ``edge_index [2, E_g]``: local 0-based ids, edges in file order.
- ``edge_label [E_g]`` int64 in ``0 … L_e - 1`` (categories, for an embedding) and
  ``edge_attr [E_g, L_e (+ A_e)]``: the one-hot edge label followed by the edge attributes.
- ``y [1]``: the graph label mapped to ``0 … C - 1`` in sorted order of the raw values
  (MUTAG: ``-1 -> 0``, ``1 -> 1``).

Cache layout ``<root>/tu/<NAME>/<NAME>_*.txt`` (as ``../shared/data/tu``). Files of the
datasets in :data:`TU_CHECKSUMS` are verified against pinned sha256 sums before they are read;
a missing dataset is downloaded as ``<NAME>.zip`` from the TU site, extracted into a
temporary folder, verified file by file and only then moved into the cache. A malformed file
is refused with a :class:`~gatkit.errors.DatasetError` naming the file and the line.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import urllib.error
import urllib.request
import zipfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from gatkit.data.download import DATA_ENV, data_root, verify_file
from gatkit.data.graph import Graph
from gatkit.errors import DatasetError

__all__ = ["TU_CHECKSUMS", "TU_URL", "TUDataset", "TUGraph", "load_tu", "read_tu_folder"]

#: Where the TU collection publishes one zip per dataset.
TU_URL = "https://www.chrsmrrs.com/graphkerneldatasets/{name}.zip"

#: Pinned sha256 of every text file of the datasets gatkit verifies (from
#: ``../shared/data/README.md`` §3; the bytes are the TU collection's own files).
TU_CHECKSUMS: dict[str, dict[str, str]] = {
    "MUTAG": {
        "MUTAG_A.txt": "d9656ca7493f3445d737c711710bb36fd432dddd1c0ea32e1d4713c86ebd28e2",
        "MUTAG_edge_labels.txt": "4669ce755075ff86c3240709345745886400908fa637a49310459b9c267b3e56",
        "MUTAG_graph_indicator.txt": (
            "7d520a4d6c7961c0cdeabe076d8fe27e795b6d373485c9a2b744987e560a2056"
        ),
        "MUTAG_graph_labels.txt": (
            "a1518ea39ba3426bd42f57396b9c4baffe68e9adc718caeeab0119c6591a5f2c"
        ),
        "MUTAG_node_labels.txt": "678f429965490e84dd27713017538c995fc05d1621beac910848b600015ee863",
    },
    "PROTEINS": {
        "PROTEINS_A.txt": "4c4b33e272fc95cac6d27ed6d5d12b9a852c8610e91fff59f8f0dbdd5a20df67",
        "PROTEINS_graph_indicator.txt": (
            "8d4ff1e852a5c28561e9bffb44cf9490bc552b13a3b6156dd12dc7f44e9afc4a"
        ),
        "PROTEINS_graph_labels.txt": (
            "c0ef9810c440775252872318d0c8adc385588e14bc4c47a2c34aa96ee3c7cdcd"
        ),
        "PROTEINS_node_attributes.txt": (
            "54eef829abb37e458a5fbf3a3c581e48e5810e220463c2cd951856b9ceb08f07"
        ),
        "PROTEINS_node_labels.txt": (
            "f758e8ad3d6e3c026b50833d75f6f90735b94eb3345e4243707f495ca8afea8d"
        ),
    },
}

#: File suffixes a TU folder may hold; the first three are required.
REQUIRED_SUFFIXES = ("A", "graph_indicator", "graph_labels")
OPTIONAL_SUFFIXES = ("node_labels", "edge_labels", "node_attributes", "edge_attributes")


@dataclass(repr=False, eq=False)
class TUGraph(Graph):
    """A :class:`~gatkit.data.Graph` with the integer categories of a TU graph kept.

    Attributes (besides those of :class:`Graph`):
        node_label: ``[N]`` int64 node label categories, or ``None``.
        edge_label: ``[E]`` int64 edge label categories (input of an embedding), or ``None``.
    """

    node_label: Tensor | None = None
    edge_label: Tensor | None = None


@dataclass
class TUDataset:
    """The graphs of one TU dataset and what their categories mean.

    Attributes:
        name: dataset name (``"MUTAG"``).
        graphs: one :class:`TUGraph` per graph, in file order.
        num_classes: number of graph classes ``C``.
        graph_label_values: raw graph label of each class ``0 … C - 1``.
        node_label_values: raw node label of each one-hot column (empty without node labels).
        edge_label_values: raw edge label of each category (empty without edge labels).
        num_node_attributes: number of real node attribute columns ``A`` (after the one-hot).
        num_edge_attributes: number of real edge attribute columns (after the one-hot).
        folder: where the files were read from.
    """

    name: str
    graphs: list[TUGraph]
    num_classes: int
    graph_label_values: list[int]
    node_label_values: list[int] = field(default_factory=list)
    edge_label_values: list[int] = field(default_factory=list)
    num_node_attributes: int = 0
    num_edge_attributes: int = 0
    folder: Path | None = None

    def __len__(self) -> int:
        return len(self.graphs)

    def __getitem__(self, index: int) -> TUGraph:
        return self.graphs[index]

    def __iter__(self) -> Iterator[TUGraph]:
        return iter(self.graphs)

    @property
    def num_features(self) -> int:
        """Width of every graph's ``x``."""
        return self.graphs[0].num_features if self.graphs else 0

    @property
    def num_edge_labels(self) -> int:
        """Number of edge label categories (0 without edge labels)."""
        return len(self.edge_label_values)

    @property
    def labels(self) -> np.ndarray:
        """``[G]`` int64 class of every graph (for stratified splits)."""
        return np.array([int(g.y[0]) for g in self.graphs], dtype=np.int64)

    def statistics(self) -> dict[str, int]:
        """Counts to compare with published figures: graphs, nodes, directed edges, classes."""
        counts = np.bincount(self.labels, minlength=self.num_classes)
        return {
            "graphs": len(self.graphs),
            "nodes": sum(g.num_nodes for g in self.graphs),
            "directed_edges": sum(g.num_edges for g in self.graphs),
            "num_classes": self.num_classes,
            **{f"class_{c}": int(n) for c, n in enumerate(counts)},
        }

    def __repr__(self) -> str:
        return (
            f"TUDataset({self.name!r}, graphs={len(self.graphs)}, classes={self.num_classes}, "
            f"features={self.num_features}, edge_labels={self.num_edge_labels})"
        )


# ---------------------------------------------------------------------------- parsing


def _read_lines(path: Path) -> list[str]:
    """The lines of ``path`` without the trailing newline(s) at the end of the file."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        raise DatasetError(f"{path}: not a UTF-8 text file ({error})") from error
    text = text.rstrip("\r\n")
    return text.split("\n") if text else []


def _check_line_count(path: Path, lines: list[str], expected: int, reason: str) -> None:
    """Refuse a file whose line count is not ``expected``, naming the first bad line."""
    if len(lines) < expected:
        raise DatasetError(
            f"{path}, line {len(lines) + 1}: file ends after {len(lines)} lines but "
            f"{expected} are expected ({reason})"
        )
    if len(lines) > expected:
        raise DatasetError(
            f"{path}, line {expected + 1}: unexpected extra line; the file has {len(lines)} "
            f"lines but {expected} are expected ({reason})"
        )


def _parse_ints(path: Path, lines: list[str], columns: int) -> np.ndarray:
    """``[len(lines), columns]`` int64 from comma-separated integer lines."""
    out = np.empty((len(lines), columns), dtype=np.int64)
    for number, line in enumerate(lines, start=1):
        parts = line.split(",")
        if len(parts) != columns:
            raise DatasetError(
                f"{path}, line {number}: expected {columns} comma-separated integer(s), "
                f"got {line!r}"
            )
        try:
            out[number - 1] = [int(part) for part in parts]
        except ValueError:
            raise DatasetError(
                f"{path}, line {number}: expected integer(s), got {line!r}"
            ) from None
    return out


def _parse_floats(path: Path, lines: list[str]) -> np.ndarray:
    """``[len(lines), A]`` float32 from comma-separated real lines (same ``A`` on every line)."""
    if not lines:
        return np.zeros((0, 0), dtype=np.float32)
    width = len(lines[0].split(","))
    out = np.empty((len(lines), width), dtype=np.float32)
    for number, line in enumerate(lines, start=1):
        parts = line.split(",")
        if len(parts) != width:
            raise DatasetError(
                f"{path}, line {number}: expected {width} comma-separated values (as on line "
                f"1), got {len(parts)}: {line!r}"
            )
        try:
            out[number - 1] = [float(part) for part in parts]
        except ValueError:
            raise DatasetError(f"{path}, line {number}: expected numbers, got {line!r}") from None
        if not np.isfinite(out[number - 1]).all():
            raise DatasetError(f"{path}, line {number}: non-finite value in {line!r}")
    return out


def _categories(values: np.ndarray) -> tuple[np.ndarray, list[int]]:
    """Map integer labels to ``0 … K - 1`` in sorted order; return codes and the raw values."""
    raw, codes = np.unique(values, return_inverse=True)
    return codes.astype(np.int64).reshape(-1), [int(v) for v in raw]


def _one_hot(codes: np.ndarray, width: int) -> np.ndarray:
    out = np.zeros((codes.shape[0], width), dtype=np.float32)
    out[np.arange(codes.shape[0]), codes] = 1.0
    return out


def read_tu_folder(folder: Path, name: str) -> TUDataset:
    """Parse the TU files ``<folder>/<name>_*.txt`` (no checksums; see :func:`load_tu`).

    Every file is checked line by line: line counts must agree with ``graph_indicator``
    (``n`` lines) and ``A`` (``m`` lines); node ids must lie in ``[1, n]`` and both ends of
    an edge in one graph; graph ids in ``[1, G]``, non-decreasing, every graph non-empty.
    Errors name the file and the 1-based line.
    """
    folder = Path(folder)
    paths = {suffix: folder / f"{name}_{suffix}.txt" for suffix in REQUIRED_SUFFIXES}
    missing = [str(p.name) for p in paths.values() if not p.exists()]
    if missing:
        raise DatasetError(f"{name}: missing file(s) {', '.join(missing)} in {folder}")
    for suffix in OPTIONAL_SUFFIXES:
        path = folder / f"{name}_{suffix}.txt"
        if path.exists():
            paths[suffix] = path

    # Graph labels: G lines, one integer each.
    label_path = paths["graph_labels"]
    graph_labels = _parse_ints(label_path, _read_lines(label_path), 1)[:, 0]
    num_graphs = graph_labels.shape[0]
    if num_graphs == 0:
        raise DatasetError(f"{label_path}, line 1: no graph labels; the dataset is empty")

    # Graph indicator: n lines, graph ids in [1, G], non-decreasing, every graph non-empty.
    indicator_path = paths["graph_indicator"]
    indicator = _parse_ints(indicator_path, _read_lines(indicator_path), 1)[:, 0]
    num_nodes = indicator.shape[0]
    bad = np.flatnonzero((indicator < 1) | (indicator > num_graphs))
    if bad.size:
        line = int(bad[0]) + 1
        raise DatasetError(
            f"{indicator_path}, line {line}: graph id {int(indicator[bad[0]])} out of range; "
            f"expected 1 … {num_graphs} ({num_graphs} lines in {label_path.name})"
        )
    decreasing = np.flatnonzero(np.diff(indicator) < 0)
    if decreasing.size:
        line = int(decreasing[0]) + 2
        raise DatasetError(
            f"{indicator_path}, line {line}: graph id {int(indicator[line - 1])} after "
            f"{int(indicator[line - 2])}; the nodes of each graph must be contiguous"
        )
    nodes_per_graph = np.bincount(indicator - 1, minlength=num_graphs)
    empty = np.flatnonzero(nodes_per_graph == 0)
    if empty.size:
        raise DatasetError(
            f"{indicator_path}: graph {int(empty[0]) + 1} has no nodes (no line holds its id)"
        )
    node_reason = f"one per node; {indicator_path.name} has {num_nodes} lines"

    # Adjacency: m lines "row, col", 1-based ids in [1, n], both ends in one graph.
    a_path = paths["A"]
    edges = _parse_ints(a_path, _read_lines(a_path), 2)
    num_edges = edges.shape[0]
    bad = np.flatnonzero(((edges < 1) | (edges > num_nodes)).any(axis=1))
    if bad.size:
        line = int(bad[0]) + 1
        raise DatasetError(
            f"{a_path}, line {line}: node id out of range in {edges[bad[0]].tolist()}; "
            f"expected ids in 1 … {num_nodes} ({node_reason})"
        )
    edges = edges - 1
    edge_graph = indicator[edges[:, 0]]
    crossing = np.flatnonzero(edge_graph != indicator[edges[:, 1]])
    if crossing.size:
        e = int(crossing[0])
        raise DatasetError(
            f"{a_path}, line {e + 1}: edge {edges[e, 0] + 1} -> {edges[e, 1] + 1} joins graph "
            f"{int(indicator[edges[e, 0]])} and graph {int(indicator[edges[e, 1]])}"
        )
    edge_reason = f"one per edge; {a_path.name} has {num_edges} lines"

    # Optional per-node and per-edge files.
    node_labels = _read_labels(paths.get("node_labels"), num_nodes, node_reason)
    node_codes, node_values, node_one_hot = node_labels
    node_attributes = _read_attributes(paths.get("node_attributes"), num_nodes, node_reason)
    edge_labels = _read_labels(paths.get("edge_labels"), num_edges, edge_reason)
    edge_codes, edge_values, edge_one_hot = edge_labels
    edge_attributes = _read_attributes(paths.get("edge_attributes"), num_edges, edge_reason)
    features = [f for f in (node_one_hot, node_attributes) if f is not None]
    edge_features = [f for f in (edge_one_hot, edge_attributes) if f is not None]
    num_node_attributes = 0 if node_attributes is None else node_attributes.shape[1]
    num_edge_attributes = 0 if edge_attributes is None else edge_attributes.shape[1]
    x_all = np.concatenate(features, axis=1) if features else np.ones((num_nodes, 1), np.float32)
    edge_attr_all = np.concatenate(edge_features, axis=1) if edge_features else None
    graph_codes, graph_values = _categories(graph_labels)

    # Split into graphs: nodes are contiguous per graph; edges are grouped by graph id.
    node_ptr = np.concatenate([[0], np.cumsum(nodes_per_graph)])
    edge_order = np.argsort(edge_graph, kind="stable")
    edge_ptr = np.concatenate([[0], np.cumsum(np.bincount(edge_graph - 1, minlength=num_graphs))])
    graphs: list[TUGraph] = []
    for g in range(num_graphs):
        n0, n1 = int(node_ptr[g]), int(node_ptr[g + 1])
        rows = edge_order[edge_ptr[g] : edge_ptr[g + 1]]
        local = torch.from_numpy(edges[rows].T - n0).contiguous()  # [2, E_g]
        graphs.append(
            TUGraph(
                x=torch.from_numpy(x_all[n0:n1]),
                edge_index=local,
                y=torch.tensor([graph_codes[g]], dtype=torch.long),
                edge_attr=None if edge_attr_all is None else torch.from_numpy(edge_attr_all[rows]),
                name=f"{name}[{g}]",
                node_label=None if node_codes is None else torch.from_numpy(node_codes[n0:n1]),
                edge_label=None if edge_codes is None else torch.from_numpy(edge_codes[rows]),
            )
        )
    return TUDataset(
        name=name,
        graphs=graphs,
        num_classes=len(graph_values),
        graph_label_values=graph_values,
        node_label_values=node_values,
        edge_label_values=edge_values,
        num_node_attributes=num_node_attributes,
        num_edge_attributes=num_edge_attributes,
        folder=folder,
    )


def _read_labels(
    path: Path | None, count: int, reason: str
) -> tuple[np.ndarray | None, list[int], np.ndarray | None]:
    """``(codes [count], label values, one-hot [count, L])`` of a label file, or nothing.

    Some TU datasets have several label columns; the first is the label.
    """
    if path is None:
        return None, [], None
    lines = _read_lines(path)
    _check_line_count(path, lines, count, reason)
    codes, values = _categories(_parse_ints(path, [ln.split(",")[0] for ln in lines], 1))
    return codes, values, _one_hot(codes, len(values))


def _read_attributes(path: Path | None, count: int, reason: str) -> np.ndarray | None:
    """``[count, D]`` float attributes of an attribute file, or ``None`` without one."""
    if path is None:
        return None
    lines = _read_lines(path)
    _check_line_count(path, lines, count, reason)
    return _parse_floats(path, lines)


# ------------------------------------------------------------------ download and cache


def _download_zip(name: str, url: str, folder: Path, checksums: Mapping[str, str]) -> None:
    """Fetch ``url`` (a TU zip), verify its text files, move them atomically into ``folder``.

    Everything happens in a temporary folder beside ``folder``; a file is moved into place
    only after every pinned file of the archive has matched its checksum, so an interrupted
    or corrupt download never leaves a partial dataset in the cache.
    """
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".{name}-download-", dir=folder.parent) as tmp:
        tmp_dir = Path(tmp)
        archive = tmp_dir / f"{name}.zip"
        try:
            with urllib.request.urlopen(url, timeout=60) as response, open(archive, "wb") as out:
                shutil.copyfileobj(response, out)
        except (urllib.error.URLError, OSError) as error:
            raise DatasetError(
                f"{name}: could not download {url}: {error}. Place the files "
                f"{', '.join(sorted(checksums))} in {folder} (or point {DATA_ENV} / --data-dir "
                "at a folder with tu/<NAME>/)."
            ) from error
        try:
            with zipfile.ZipFile(archive) as zf:
                members = {Path(info.filename).name: info for info in zf.infolist()}
                extracted: dict[str, Path] = {}
                for file_name in checksums:
                    if file_name not in members:
                        raise DatasetError(
                            f"{name}: {url} has no file {file_name} (archive holds "
                            f"{', '.join(sorted(members)) or 'nothing'})"
                        )
                    target = tmp_dir / file_name  # the member's base name only: no traversal
                    with zf.open(members[file_name]) as src, open(target, "wb") as dst:
                        shutil.copyfileobj(src, dst)
                    extracted[file_name] = target
        except zipfile.BadZipFile as error:
            raise DatasetError(f"{name}: {url} is not a valid zip archive ({error})") from error
        for file_name, path in extracted.items():
            verify_file(path, checksums[file_name])
        for file_name, path in extracted.items():
            os.replace(path, folder / file_name)


def load_tu(
    name: str,
    root: str | os.PathLike[str] | None = None,
    download: bool = True,
    url: str | None = None,
    checksums: Mapping[str, str] | None = None,
) -> TUDataset:
    """Load the TU dataset ``name`` from ``<root>/tu/<name>/``, downloading it if needed.

    Args:
        name: dataset name as the TU collection spells it (``"MUTAG"``, ``"PROTEINS"``).
        root: cache root; default ``$GATKIT_DATA``, else ``~/.cache/gatkit``.
        download: fetch missing files from ``url`` (default :data:`TU_URL`).
        url: archive location override (any URL ``urllib`` opens, ``file://`` included).
        checksums: pinned ``{file name: sha256}``; default :data:`TU_CHECKSUMS` ``[name]``.
            Without pinned sums the local files are read unverified and nothing is
            downloaded.

    Returns:
        A :class:`TUDataset` of :class:`TUGraph` (see the module docstring for the fields).

    Raises:
        DatasetError: a file is missing and cannot be downloaded, fails its checksum (the
            message names the file, expected and actual sha256) or is malformed (the message
            names the file and the line).
    """
    if not isinstance(name, str) or not name or "/" in name or "\\" in name:
        raise DatasetError(f"name must be a TU dataset name such as 'MUTAG', got {name!r}")
    folder = data_root(root) / "tu" / name
    pinned = dict(checksums) if checksums is not None else TU_CHECKSUMS.get(name)
    if pinned is None:
        if not (folder / f"{name}_A.txt").exists():
            raise DatasetError(
                f"{name}: no files in {folder} and no pinned checksums to verify a download "
                f"against (gatkit pins {', '.join(sorted(TU_CHECKSUMS))}); place "
                f"{name}_A.txt, {name}_graph_indicator.txt, {name}_graph_labels.txt there or "
                "pass checksums={file: sha256}"
            )
        return read_tu_folder(folder, name)
    missing = [f for f in pinned if not (folder / f).exists()]
    if missing:
        if not download:
            raise DatasetError(
                f"{name}: missing file(s) {', '.join(missing)} in {folder} and download=False. "
                f"Place them there (or point {DATA_ENV} / --data-dir at a folder with "
                f"tu/{name}/)."
            )
        _download_zip(name, url or TU_URL.format(name=name), folder, pinned)
    for file_name in pinned:
        verify_file(folder / file_name, pinned[file_name])
    return read_tu_folder(folder, name)
