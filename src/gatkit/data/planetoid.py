"""The Planetoid citation graphs Cora, Citeseer and Pubmed with their public split.

Yang, Cohen, Salakhutdinov, *Revisiting Semi-Supervised Learning with Graph Embeddings*,
ICML 2016 (files from ``kimiyoung/planetoid``, MIT). The graph is built the way Kipf &
Welling's GCN ``load_data`` builds it, which the GAT authors reuse (Veličković et al., 2018):

- features ``vstack(allx, tx)`` with the test rows placed at the node ids of
  ``test.index``; labels likewise from ``ally`` and ``ty`` (one-hot → class index);
- Citeseer's ``test.index`` skips 15 ids of its range (nodes of the graph with no row in
  ``tx``/``ty``): those nodes get zero features and label ``-1`` (unlabelled), as the
  zero-padded ``tx``/``ty`` of the original loaders give them, and belong to no split;
- edges from the ``graph`` adjacency dict, made symmetric and deduplicated, self-loops
  removed (the attention layers add them);
- train = the first ``len(y)`` nodes, val = the next 500, test = ``test.index``.

The files are Python-2 pickles. They are read with a restricted unpickler that admits only the
classes these files are made of, so a tampered file cannot run code while it is loaded.
"""

from __future__ import annotations

import os
import pickle
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch

from gatkit.data.download import Digest, Expected, data_root, ensure_files
from gatkit.data.graph import Graph
from gatkit.errors import DatasetError

__all__ = ["PLANETOID_NAMES", "PLANETOID_URL", "load_planetoid", "read_planetoid_pickle"]

#: The canonical download location; a file's URL is this prefix + its name.
PLANETOID_URL = "https://github.com/kimiyoung/planetoid/raw/master/data/"

PLANETOID_NAMES = ("cora", "citeseer", "pubmed")

#: File suffixes, in Kipf's loading order (``ind.<name>.<suffix>``).
_SUFFIXES = ("x", "y", "tx", "ty", "allx", "ally", "graph", "test.index")

#: Number of validation nodes of the public split (after the training nodes).
NUM_VAL = 500

#: Upstream git blob id of ``ind.pubmed.allx`` (kimiyoung/planetoid, tkipf/gcn).
PUBMED_ALLX_UPSTREAM_BLOB = "3b86bccf08111c37c632a9dd8ab63db25ea76361"
#: sha256 of the documented reconstruction of ``ind.pubmed.allx`` in the shared data folder
#: (rebuilt from another real copy of the Pubmed features; see /work/shared/data/README.md
#: section 1: same non-zero pattern, about 0.4 % of values 1 float32 ulp off).
PUBMED_ALLX_RECONSTRUCTION_SHA256 = (
    "36492ccfffc738969b3103f27cea4c8ce57b97d95da5bdd39ee90501376d565b"
)

#: Pinned checksums of every raw file (sha256 unless stated).
CHECKSUMS: dict[str, dict[str, Expected]] = {
    "cora": {
        "ind.cora.x": "23cfa55d91c6f624233f5eb7b6e3f141f1bd2b2ae39608a63cf5d084bb27baab",
        "ind.cora.y": "94465c14eb53e04ca262198dcbb2521ee8af60fb3f3d546cd6ca24a511b0e7d1",
        "ind.cora.tx": "b9afbaa4a400df991f6f02ef677e1e44da55ffc04801fd02f9e673987829226a",
        "ind.cora.ty": "41f5ac76596a1699cc33f53084a2419e92961c42bb75f36fc38e616d348532ad",
        "ind.cora.allx": "9419ba2f26f5c35243db64aba110e0f35a04851609e0dc5433450676ca6b8543",
        "ind.cora.ally": "2b998f5cc7fedc86e7f97ca2498f47a1ffc1462c29e2d578b23bf3f62b6e7d71",
        "ind.cora.graph": "58f13302f39dde8852dad6fe6d15b89b077b6d7f837626bce671ef80344b383d",
        "ind.cora.test.index": "297ce89af2b51a6a194181c7dbe1796c6a1cf9cd9349a88383b1b1e227867875",
    },
    "citeseer": {
        "ind.citeseer.x": "d20de19150741e555de0ed037195630fc194114ebc7fd72ced62810148aa22f6",
        "ind.citeseer.y": "8ba87e515d8e3ee3cf52f6d2c5b86aa73f11ecad825a808455209ec26cd54924",
        "ind.citeseer.tx": "539a8906a2da97628d212f2fdd668c109a8b3f0d36574b59e5d3fd5b5303da21",
        "ind.citeseer.ty": "55e5bd1ba1e733a04598753ad1a8d57957f4b8f89e74519f41f4f4938767e4ce",
        "ind.citeseer.allx": "2ac30345d95c9ec933a817ee0bdd6a5f077f8c184a20e696910192d534414668",
        "ind.citeseer.ally": "f704b2d986dde6c2669934de1f3ae5696a6cf9455c0f6b2646a2d135ea0a1c95",
        "ind.citeseer.graph": "d79a4ef9d3e7169aee8946145f6b7306e35bc79bffad26346cfb94e10e9912a7",
        "ind.citeseer.test.index": (
            "2af990671580b6b2df5d158d1038f8292e30c9cd821b5453f399659b25b723d4"
        ),
    },
    "pubmed": {
        "ind.pubmed.x": "fbe9cb5c47200d1b7769a26e579be3b7130b556831f9d850e77c4c74f2599b33",
        "ind.pubmed.y": "e6c807633307a07ed659249006536a147c7999c797f11a2560752990181b41b3",
        "ind.pubmed.tx": "4eb5f5d0f30f26497eb0ac6ac9719d09c67e284f1ed0385c93f3ef27a671da3d",
        "ind.pubmed.ty": "ee2e0d4819d9fbcc403689c3bf2e49face401b605932f093bc58ab6461130fdd",
        # Either the upstream file (known by its git blob id only) or the documented
        # reconstruction of the shared data folder (its sha256 differs from upstream).
        "ind.pubmed.allx": (
            Digest("git-blob", PUBMED_ALLX_UPSTREAM_BLOB, "upstream kimiyoung/planetoid"),
            Digest("sha256", PUBMED_ALLX_RECONSTRUCTION_SHA256, "documented reconstruction"),
        ),
        "ind.pubmed.ally": "0c37bbe3b5014ec365e9d393cf4791925e5ed94fb194305d74f064a8d7b50f0e",
        "ind.pubmed.graph": "5b89f0036ca22909471f1e6558eb42fa06e0c730a577bde5b058b40638f81dc9",
        "ind.pubmed.test.index": (
            "b101d421688bbaecbd82e8a18f1e282378d6830f3a37666f28ebc47f844341b5"
        ),
    },
}


def _reconstruct() -> Any:
    """numpy's array-unpickling helper, from wherever this numpy version keeps it."""
    try:
        from numpy._core.multiarray import _reconstruct
    except ImportError:  # numpy < 2
        from numpy.core.multiarray import _reconstruct
    return _reconstruct


#: (module, name) pairs the Planetoid pickles refer to, and what each resolves to. Module
#: paths are given as written by Python 2 / old SciPy / old NumPy and as their current names.
_ALLOWED_GLOBALS: dict[tuple[str, str], Any] = {
    ("scipy.sparse.csr", "csr_matrix"): sp.csr_matrix,
    ("scipy.sparse._csr", "csr_matrix"): sp.csr_matrix,
    ("scipy.sparse", "csr_matrix"): sp.csr_matrix,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("numpy.core.multiarray", "_reconstruct"): _reconstruct(),
    ("numpy._core.multiarray", "_reconstruct"): _reconstruct(),
    ("collections", "defaultdict"): defaultdict,
    ("__builtin__", "list"): list,
    ("builtins", "list"): list,
    ("__builtin__", "dict"): dict,
    ("builtins", "dict"): dict,
    ("__builtin__", "int"): int,
    ("builtins", "int"): int,
}


class _PlanetoidUnpickler(pickle.Unpickler):
    """An unpickler that resolves only the globals of :data:`_ALLOWED_GLOBALS`."""

    def __init__(self, file: Any, path: Path) -> None:
        super().__init__(file, encoding="latin1")
        self.path = path

    def find_class(self, module: str, name: str) -> Any:
        allowed = _ALLOWED_GLOBALS.get((module, name))
        if allowed is None:
            raise DatasetError(
                f"refusing to load {name} ({module}.{name}) from {self.path}: not a Planetoid "
                "data class"
            )
        return allowed


def read_planetoid_pickle(path: str | os.PathLike[str]) -> Any:
    """The object stored in the Planetoid pickle ``path``, read with a restricted unpickler.

    Only sparse CSR matrices, NumPy arrays and (default)dicts of lists can come out: any
    other global in the pickle raises :class:`DatasetError` before it is resolved, so no code
    named by the file is run. A malformed pickle also raises :class:`DatasetError`.
    """
    path = Path(path)
    try:
        with open(path, "rb") as handle:
            return _PlanetoidUnpickler(handle, path).load()
    except DatasetError:
        raise
    except Exception as error:  # any unpickling failure means a malformed file
        raise DatasetError(
            f"could not read {path} as a Planetoid pickle: {type(error).__name__}: {error}"
        ) from error


def _read_index(path: Path) -> np.ndarray:
    """The integers of a ``test.index`` file, one per line, in file order."""
    try:
        lines = path.read_text(encoding="ascii").split()
        return np.array([int(line) for line in lines], dtype=np.int64)
    except (ValueError, UnicodeDecodeError) as error:
        raise DatasetError(f"{path} must hold one integer per line: {error}") from error


def _expect(condition: bool, path: Path, message: str) -> None:
    if not condition:
        raise DatasetError(f"malformed Planetoid file {path}: {message}")


def _as_csr(value: Any, path: Path) -> sp.csr_matrix:
    _expect(sp.issparse(value), path, f"expected a scipy.sparse matrix, got {type(value)}")
    try:
        matrix = sp.csr_matrix(value, dtype=np.float32)
        matrix.check_format(full_check=True)
    except (AttributeError, TypeError, ValueError, IndexError) as error:
        message = f"malformed Planetoid file {path}: broken sparse matrix: {error}"
        raise DatasetError(message) from error
    return matrix


def _as_onehot(value: Any, path: Path) -> np.ndarray:
    _expect(
        isinstance(value, np.ndarray) and value.ndim == 2,
        path,
        f"expected a 2-D one-hot numpy array, got {type(value).__name__}"
        f"{getattr(value, 'shape', '')}",
    )
    return value


def _labels(onehot: np.ndarray) -> np.ndarray:
    """Class index of each one-hot row; ``-1`` for an all-zero row."""
    labels = onehot.argmax(axis=1).astype(np.int64)
    labels[onehot.sum(axis=1) == 0] = -1
    return labels


def _row_normalize(features: sp.csr_matrix) -> sp.csr_matrix:
    """Each row divided by its sum; rows summing to zero stay zero."""
    row_sum = np.asarray(features.sum(axis=1), dtype=np.float64).reshape(-1)
    inverse = np.zeros_like(row_sum)
    nonzero = row_sum != 0
    inverse[nonzero] = 1.0 / row_sum[nonzero]
    return sp.csr_matrix(sp.diags(inverse) @ features.astype(np.float64), dtype=np.float32)


def _edges(graph: Any, num_nodes: int, path: Path) -> torch.Tensor:
    """Symmetric, deduplicated ``[2, E]`` edges of an adjacency dict, self-loops removed.

    Edges are sorted by target node, then source node (the order PyG's Planetoid uses).
    """
    _expect(isinstance(graph, dict), path, f"expected a dict of lists, got {type(graph)}")
    sources: list[int] = []
    targets: list[int] = []
    for node, neighbours in graph.items():
        _expect(isinstance(neighbours, list), path, f"node {node}: expected a neighbour list")
        sources.extend([node] * len(neighbours))
        targets.extend(neighbours)
    src = np.asarray(sources, dtype=np.int64)
    dst = np.asarray(targets, dtype=np.int64)
    if src.size:
        lo, hi = int(min(src.min(), dst.min())), int(max(src.max(), dst.max()))
        _expect(lo >= 0 and hi < num_nodes, path, f"node ids {lo}..{hi} outside [0, {num_nodes})")
    src, dst = np.concatenate([src, dst]), np.concatenate([dst, src])
    keep = src != dst
    keys = np.unique(dst[keep] * num_nodes + src[keep])
    return torch.from_numpy(np.vstack([keys % num_nodes, keys // num_nodes]))


def _mask(indices: np.ndarray, num_nodes: int) -> torch.Tensor:
    mask = torch.zeros(num_nodes, dtype=torch.bool)
    mask[torch.from_numpy(indices)] = True
    return mask


def load_planetoid(
    name: str,
    root: str | os.PathLike[str] | None = None,
    download: bool = True,
    normalize_features: bool = True,
) -> Graph:
    """Load Cora, Citeseer or Pubmed with the public Planetoid split as a :class:`Graph`.

    Args:
        name: ``"cora"``, ``"citeseer"`` or ``"pubmed"`` (case-insensitive).
        root: the cache root (default ``$GATKIT_DATA``, else ``~/.cache/gatkit``); the raw
            files live in ``<root>/planetoid/<name>/raw/ind.<name>.<suffix>``.
        download: fetch missing files from :data:`PLANETOID_URL`. Every file, present or
            downloaded, is checked against its pinned checksum.
        normalize_features: divide each feature row by its sum (zero rows stay zero), as
            GCN and GAT do.

    Returns:
        A Graph with ``x [N, F]`` float32, ``edge_index [2, E]`` (both directions of every
        undirected edge, no self-loops, sorted by target then source), ``y [N]`` int64
        (``-1`` for Citeseer's 15 label-less nodes), and the train/val/test masks.

    Raises:
        ValueError: ``name`` is not a Planetoid dataset.
        DatasetError: a file is missing (offline), fails its checksum, or is malformed.
    """
    key = name.lower() if isinstance(name, str) else name
    if key not in CHECKSUMS:
        raise ValueError(f"name must be one of {', '.join(PLANETOID_NAMES)}; got {name!r}")
    folder = data_root(root) / "planetoid" / key / "raw"
    paths = ensure_files(
        folder, CHECKSUMS[key], PLANETOID_URL, dataset=f"planetoid/{key}", download=download
    )
    files = {suffix: paths[f"ind.{key}.{suffix}"] for suffix in _SUFFIXES}

    x = _as_csr(read_planetoid_pickle(files["x"]), files["x"])
    y = _as_onehot(read_planetoid_pickle(files["y"]), files["y"])
    tx = _as_csr(read_planetoid_pickle(files["tx"]), files["tx"])
    ty = _as_onehot(read_planetoid_pickle(files["ty"]), files["ty"])
    allx = _as_csr(read_planetoid_pickle(files["allx"]), files["allx"])
    ally = _as_onehot(read_planetoid_pickle(files["ally"]), files["ally"])
    graph = read_planetoid_pickle(files["graph"])
    test_index = _read_index(files["test.index"])

    num_features, num_label_columns = allx.shape[1], ally.shape[1]
    for suffix, matrix, width in (
        ("x", x, num_features),
        ("tx", tx, num_features),
        ("y", y, num_label_columns),
        ("ty", ty, num_label_columns),
    ):
        _expect(
            matrix.shape[1] == width,
            files[suffix],
            f"{matrix.shape[1]} columns, expected {width} like ind.{key}.all{suffix[-1]}",
        )
    _expect(allx.shape[0] == ally.shape[0], files["ally"], "row count differs from allx")
    _expect(x.shape[0] == y.shape[0], files["y"], "row count differs from x")
    _expect(
        tx.shape[0] == ty.shape[0] == test_index.size,
        files["test.index"],
        f"{test_index.size} test indices for {tx.shape[0]} tx rows and {ty.shape[0]} ty rows",
    )

    # Node ids: 0..len(allx)-1 are the allx rows; test node test_index[k] gets row k of
    # tx/ty. Ids in between that no test row claims (Citeseer's isolated nodes) keep zero
    # features and label -1, the zero padding of Kipf's loader.
    num_train_pool = allx.shape[0]
    num_nodes = max(num_train_pool + tx.shape[0], int(test_index.max()) + 1)
    _expect(
        int(test_index.min()) >= num_train_pool and np.unique(test_index).size == test_index.size,
        files["test.index"],
        f"test indices must be distinct and >= {num_train_pool} (the allx rows)",
    )
    order = np.concatenate([np.arange(num_train_pool), test_index])
    features = sp.vstack([allx, tx], format="csr")
    permutation = sp.csr_matrix(
        (np.ones(order.size, dtype=np.float32), (order, np.arange(order.size))),
        shape=(num_nodes, order.size),
    )
    features = sp.csr_matrix(permutation @ features, dtype=np.float32)
    labels = np.full(num_nodes, -1, dtype=np.int64)
    labels[order] = _labels(np.vstack([ally, ty]))

    if normalize_features:
        features = _row_normalize(features)
    edge_index = _edges(graph, num_nodes, files["graph"])

    num_train = y.shape[0]
    _expect(
        num_train + NUM_VAL <= num_train_pool,
        files["y"],
        f"{num_train} training + {NUM_VAL} validation nodes exceed the {num_train_pool} allx rows",
    )
    return Graph(
        x=torch.from_numpy(features.toarray()),
        edge_index=edge_index,
        y=torch.from_numpy(labels),
        train_mask=_mask(np.arange(num_train), num_nodes),
        val_mask=_mask(np.arange(num_train, num_train + NUM_VAL), num_nodes),
        test_mask=_mask(np.sort(test_index), num_nodes),
        name=key,
    )
