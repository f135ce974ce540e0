r"""OGB node-property datasets (``ogbn-arxiv``, ``ogbn-products``) as :class:`Graph`.

Hu et al., "Open Graph Benchmark: Datasets for Machine Learning on Graphs", NeurIPS 2020.
With the optional ``ogb`` package (``pip install 'gatkit[ogb]'``) the files are fetched and
parsed by ``ogb.nodeproppred.NodePropPredDataset``; without it gatkit reads files already
in place itself. Either way the on-disk layout is OGB's, under ``<root>/ogb/``::

    <dir>/RELEASE_v1.txt              (OGB's version marker)
    <dir>/raw/edge.csv.gz             one "source,target" row per edge
    <dir>/raw/num-node-list.csv.gz    one row: N
    <dir>/raw/num-edge-list.csv.gz    one row: E
    <dir>/raw/node-feat.csv.gz        N rows of F comma-separated floats
    <dir>/raw/node-label.csv.gz       N rows: the class
    <dir>/split/<split>/{train,valid,test}.csv.gz   node ids, one per row

with ``<dir>`` = ``ogbn_arxiv`` (split ``time``) or ``ogbn_products`` (split
``sales_ranking``), as in OGB's ``master.csv``. ogbn-products stores each undirected edge
once and OGB adds the reverse edges; ogbn-arxiv is a directed citation graph, made
undirected by default here as in the OGB examples and the GATv2 authors' code
(``to_undirected=False`` keeps the citations' direction).
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import sys
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from gatkit.data.download import data_root
from gatkit.data.graph import Graph
from gatkit.errors import DatasetError

__all__ = ["OGB_NODE_DATASETS", "OGBNodeMeta", "load_ogb_node", "ogb_available"]


@dataclass(frozen=True)
class OGBNodeMeta:
    """The entries of OGB's ``master.csv`` that loading needs."""

    dir_name: str
    split: str
    add_inverse_edge: bool
    num_classes: int
    version: int


#: The supported datasets, from ``ogb/nodeproppred/master.csv`` (ogb 1.3.6).
OGB_NODE_DATASETS: dict[str, OGBNodeMeta] = {
    "ogbn-arxiv": OGBNodeMeta("ogbn_arxiv", "time", False, 40, 1),
    "ogbn-products": OGBNodeMeta("ogbn_products", "sales_ranking", True, 47, 1),
}

_RAW_FILES = (
    "edge.csv.gz",
    "num-node-list.csv.gz",
    "num-edge-list.csv.gz",
    "node-feat.csv.gz",
    "node-label.csv.gz",
)
_SPLITS = (("train", "train_mask"), ("valid", "val_mask"), ("test", "test_mask"))


def ogb_available() -> bool:
    """Whether the optional ``ogb`` package can be imported."""
    return importlib.util.find_spec("ogb") is not None


def _meta(name: object) -> OGBNodeMeta:
    if not isinstance(name, str) or name.lower() not in OGB_NODE_DATASETS:
        raise ValueError(f"name must be one of {', '.join(OGB_NODE_DATASETS)}, got {name!r}")
    return OGB_NODE_DATASETS[name.lower()]


@contextlib.contextmanager
def _ogb_compat() -> Iterator[None]:
    """Let ``ogb`` 1.3.6 run under torch >= 2.6 without touching stdout.

    ogb reloads its own processed cache with a bare ``torch.load``, which torch >= 2.6
    refuses for NumPy arrays (``weights_only`` became the default); the file is the one
    ogb wrote from the raw files, so full unpickling is allowed for that call only. ogb's
    progress prints go to stderr so that ``--json`` output stays clean.
    """
    key = "TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD"
    previous = os.environ.get(key)
    os.environ[key] = "1"
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(sys.stderr):
            warnings.simplefilter("ignore")
            yield
    finally:
        if previous is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = previous


def _read_with_ogb(name: str, folder: Path, meta: OGBNodeMeta) -> dict[str, Any]:
    """Arrays of the dataset through ``ogb.nodeproppred.NodePropPredDataset``."""
    dataset_dir = folder / meta.dir_name
    if dataset_dir.is_dir() and not (dataset_dir / f"RELEASE_v{meta.version}.txt").exists():
        # ogb would stop and ask on stdin whether to delete the folder.
        raise DatasetError(
            f"{dataset_dir} exists but has no RELEASE_v{meta.version}.txt: it is not an "
            f"OGB v{meta.version} download; remove the folder to download it again"
        )
    from ogb.nodeproppred import NodePropPredDataset

    folder.mkdir(parents=True, exist_ok=True)
    if dataset_dir.is_dir():  # ogb saves its cache there without creating the folder
        (dataset_dir / "processed").mkdir(exist_ok=True)
    with _ogb_compat():
        dataset = NodePropPredDataset(name=name, root=str(folder))
        graph, labels = dataset[0]
        split = dataset.get_idx_split()
    return {
        "edge_index": np.asarray(graph["edge_index"], dtype=np.int64),
        "x": np.asarray(graph["node_feat"], dtype=np.float32),
        "num_nodes": int(graph["num_nodes"]),
        "y": np.asarray(labels).reshape(-1),
        "split": {key: np.asarray(value, dtype=np.int64) for key, value in split.items()},
    }


def _read_csv(path: Path, dtype: type, columns: int | None = None) -> np.ndarray:
    if not path.is_file():
        raise DatasetError(f"missing OGB file {path}")
    try:
        values = np.loadtxt(path, delimiter=",", dtype=dtype, ndmin=2)
    except (ValueError, OSError, EOFError) as error:
        raise DatasetError(f"{path} is not a valid OGB csv.gz file: {error}") from error
    if columns is not None and values.size > 0 and values.shape[1] != columns:
        raise DatasetError(f"{path} has {values.shape[1]} columns per row, expected {columns}")
    return values


def _read_raw_layout(name: str, folder: Path, meta: OGBNodeMeta) -> dict[str, Any]:
    """Arrays of the dataset from OGB's raw files, read by gatkit (no ``ogb`` needed)."""
    dataset_dir = folder / meta.dir_name
    raw = dataset_dir / "raw"
    missing = [f for f in _RAW_FILES if not (raw / f).is_file()]
    split_dir = dataset_dir / "split" / meta.split
    missing += [
        f"split/{meta.split}/{part}.csv.gz"
        for part, _ in _SPLITS
        if not (split_dir / f"{part}.csv.gz").is_file()
    ]
    if missing:
        raise DatasetError(
            f"{name} is not on disk at {dataset_dir} (missing: {', '.join(missing)}); "
            f"install the optional 'ogb' package (pip install 'gatkit[ogb]') to download "
            f"it, or place OGB's extracted files there"
        )
    edges = _read_csv(raw / "edge.csv.gz", np.int64, 2).T  # [2, E]
    num_nodes = int(_read_csv(raw / "num-node-list.csv.gz", np.int64).reshape(-1)[0])
    num_edges = int(_read_csv(raw / "num-edge-list.csv.gz", np.int64).reshape(-1)[0])
    if edges.shape[1] != num_edges:
        raise DatasetError(
            f"{raw / 'edge.csv.gz'} has {edges.shape[1]} edges but num-edge-list.csv.gz "
            f"says {num_edges}"
        )
    if meta.add_inverse_edge:  # each edge followed by its reverse, as OGB does
        edges = np.stack([edges, edges[::-1]], axis=2).reshape(2, -1)
    x = _read_csv(raw / "node-feat.csv.gz", np.float32)
    y = _read_csv(raw / "node-label.csv.gz", np.float64).reshape(-1)
    for label, array in (("node-feat.csv.gz", x), ("node-label.csv.gz", y)):
        if array.shape[0] != num_nodes:
            raise DatasetError(
                f"{raw / label} has {array.shape[0]} rows but num-node-list.csv.gz says "
                f"{num_nodes} nodes"
            )
    split = {
        part: _read_csv(split_dir / f"{part}.csv.gz", np.int64).reshape(-1) for part, _ in _SPLITS
    }
    return {"edge_index": edges, "x": x, "num_nodes": num_nodes, "y": y, "split": split}


def _to_graph(name: str, arrays: dict[str, Any], to_undirected: bool) -> Graph:
    num_nodes = arrays["num_nodes"]
    edge_index = torch.from_numpy(np.ascontiguousarray(arrays["edge_index"])).long()
    if edge_index.numel() > 0 and (int(edge_index.min()) < 0 or int(edge_index.max()) >= num_nodes):
        raise DatasetError(f"{name}: edge.csv.gz holds node ids outside [0, {num_nodes})")
    if to_undirected:  # add reverse edges, drop duplicates; sorted by (target, source)
        both = torch.cat([edge_index, edge_index.flip(0)], dim=1)
        keys = torch.unique(both[1] * num_nodes + both[0])
        edge_index = torch.stack([keys % num_nodes, keys // num_nodes])
    labels = np.asarray(arrays["y"], dtype=np.float64)
    y = torch.from_numpy(np.where(np.isnan(labels), -1, labels).astype(np.int64))
    masks = {}
    for part, mask_name in _SPLITS:
        index = torch.as_tensor(np.array(arrays["split"][part], dtype=np.int64))  # a copy
        if index.numel() > 0 and (int(index.min()) < 0 or int(index.max()) >= num_nodes):
            raise DatasetError(f"{name}: split '{part}' holds node ids outside [0, {num_nodes})")
        mask = torch.zeros(num_nodes, dtype=torch.bool)
        mask[index] = True
        masks[mask_name] = mask
    x = torch.from_numpy(np.ascontiguousarray(arrays["x"], dtype=np.float32))
    return Graph(x=x, edge_index=edge_index, y=y, name=name, **masks)


def load_ogb_node(
    name: str,
    root: str | os.PathLike[str] | None = None,
    *,
    to_undirected: bool | None = None,
    use_ogb: bool | None = None,
) -> Graph:
    """Load ``ogbn-arxiv`` or ``ogbn-products`` with OGB's official split as a Graph.

    Args:
        name: ``"ogbn-arxiv"`` or ``"ogbn-products"``.
        root: the cache root (default ``$GATKIT_DATA``, else ``~/.cache/gatkit``); files
            live in ``<root>/ogb/<dir>/`` (module docstring).
        to_undirected: add the reverse of every edge (default: yes for ogbn-arxiv; the
            products graph is undirected already).
        use_ogb: read through the ``ogb`` package (``None``: when it is installed). Only
            the ``ogb`` path downloads missing files.

    Returns:
        A Graph with ``x [N, F]`` float32, ``edge_index [2, E]``, ``y [N]`` int64 and the
        train/val/test masks of OGB's split.

    Raises:
        ValueError: unknown ``name``.
        ImportError: ``use_ogb=True`` without the ``ogb`` package.
        DatasetError: files missing (without ``ogb``) or malformed.
    """
    meta = _meta(name)
    name = name.lower()
    folder = data_root(root) / "ogb"
    if use_ogb is None:
        use_ogb = ogb_available()
    if use_ogb and not ogb_available():
        raise ImportError(
            "load_ogb_node(use_ogb=True) needs the optional package 'ogb', which is not "
            "installed: pip install 'gatkit[ogb]'"
        )
    reader = _read_with_ogb if use_ogb else _read_raw_layout
    arrays = reader(name, folder, meta)
    if to_undirected is None:
        to_undirected = name == "ogbn-arxiv"
    return _to_graph(name, arrays, to_undirected)
