"""The OGB loader on a miniature written in OGB's on-disk layout (downloads are impossible)."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest
import torch

from gatkit.data.ogb import OGB_NODE_DATASETS, load_ogb_node, ogb_available
from gatkit.errors import DatasetError

NUM_NODES, NUM_FEATURES = 12, 3


def _write_csv_gz(path: Path, rows: np.ndarray, fmt: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = rows.reshape(rows.shape[0], -1)
    text = "".join(",".join(fmt % v for v in row) + "\n" for row in rows)
    with gzip.open(path, "wt") as handle:
        handle.write(text)


def write_miniature(root: Path, name: str) -> dict[str, np.ndarray]:
    """A 12-node dataset in OGB's layout under ``root/ogb``; returns what was written."""
    meta = OGB_NODE_DATASETS[name]
    base = root / "ogb" / meta.dir_name
    rng = np.random.default_rng(0)
    edges = np.array([[0, 1], [1, 2], [2, 0], [3, 4], [5, 6], [7, 8], [9, 10], [11, 0]])
    x = rng.normal(size=(NUM_NODES, NUM_FEATURES)).astype(np.float32)
    y = rng.integers(0, 5, size=NUM_NODES)
    split = {"train": np.arange(0, 6), "valid": np.arange(6, 9), "test": np.arange(9, 12)}
    _write_csv_gz(base / "raw" / "edge.csv.gz", edges, "%d")
    _write_csv_gz(base / "raw" / "num-node-list.csv.gz", np.array([NUM_NODES]), "%d")
    _write_csv_gz(base / "raw" / "num-edge-list.csv.gz", np.array([len(edges)]), "%d")
    _write_csv_gz(base / "raw" / "node-feat.csv.gz", x, "%.8f")
    _write_csv_gz(base / "raw" / "node-label.csv.gz", y, "%d")
    _write_csv_gz(base / "raw" / "node_year.csv.gz", np.full(NUM_NODES, 2020), "%d")
    for part, index in split.items():
        _write_csv_gz(base / "split" / meta.split / f"{part}.csv.gz", index, "%d")
    (base / f"RELEASE_v{meta.version}.txt").write_text("miniature for tests\n")
    return {"edges": edges, "x": x, "y": y, **split}


def _edge_set(edge_index: torch.Tensor) -> set[tuple[int, int]]:
    return set(map(tuple, edge_index.t().tolist()))


def test_raw_reader_reads_the_arxiv_layout_and_makes_it_undirected(tmp_path):
    written = write_miniature(tmp_path, "ogbn-arxiv")
    graph = load_ogb_node("ogbn-arxiv", root=tmp_path, use_ogb=False)
    graph.validate()
    assert graph.num_nodes == NUM_NODES and graph.name == "ogbn-arxiv"
    torch.testing.assert_close(graph.x, torch.from_numpy(written["x"]))
    assert graph.y.tolist() == written["y"].tolist()
    edges = {(int(s), int(t)) for s, t in written["edges"]}
    assert _edge_set(graph.edge_index) == edges | {(t, s) for s, t in edges}
    assert graph.train_mask.nonzero().flatten().tolist() == written["train"].tolist()
    assert graph.val_mask.nonzero().flatten().tolist() == written["valid"].tolist()
    assert graph.test_mask.nonzero().flatten().tolist() == written["test"].tolist()


def test_raw_reader_keeps_citation_direction_when_asked(tmp_path):
    written = write_miniature(tmp_path, "ogbn-arxiv")
    graph = load_ogb_node("ogbn-arxiv", root=tmp_path, use_ogb=False, to_undirected=False)
    assert graph.edge_index.t().tolist() == written["edges"].tolist()


def test_raw_reader_adds_inverse_edges_for_products(tmp_path):
    written = write_miniature(tmp_path, "ogbn-products")
    graph = load_ogb_node("ogbn-products", root=tmp_path, use_ogb=False)
    assert graph.num_edges == 2 * len(written["edges"])
    assert graph.edge_index[:, 1::2].tolist() == graph.edge_index[:, 0::2].flip(0).tolist()


def test_missing_files_name_the_folder_and_the_extra(tmp_path):
    with pytest.raises(DatasetError, match=r"ogbn_arxiv.*gatkit\[ogb\]"):
        load_ogb_node("ogbn-arxiv", root=tmp_path, use_ogb=False)


def test_unknown_name_is_refused():
    with pytest.raises(ValueError, match="ogbn-arxiv, ogbn-products"):
        load_ogb_node("ogbn-mag")


@pytest.mark.skipif(not ogb_available(), reason="the optional 'ogb' package is not installed")
@pytest.mark.parametrize("name", ["ogbn-arxiv", "ogbn-products"])
def test_ogb_package_reads_the_miniature_like_the_raw_reader(tmp_path, name):
    write_miniature(tmp_path, name)
    mine = load_ogb_node(name, root=tmp_path, use_ogb=False)
    for _ in range(2):  # first call parses the raw files, the second reads ogb's cache
        theirs = load_ogb_node(name, root=tmp_path, use_ogb=True)
        torch.testing.assert_close(theirs.x, mine.x)
        assert torch.equal(theirs.edge_index, mine.edge_index)
        assert torch.equal(theirs.y, mine.y)
        for mask in ("train_mask", "val_mask", "test_mask"):
            assert torch.equal(getattr(theirs, mask), getattr(mine, mask))
