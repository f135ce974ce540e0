"""load_tu: statistics against the shared data README, checksums, download, malformed files."""

from __future__ import annotations

import shutil
import zipfile
from pathlib import Path

import pytest
import torch

from gatkit.data.tu import TU_CHECKSUMS, TUGraph, load_tu, read_tu_folder
from gatkit.errors import DatasetError

# Verified statistics from shared/data/README.md, section 3.
README_STATS = {
    "MUTAG": dict(graphs=188, nodes=3371, edges=7442, class_counts={-1: 63, 1: 125}),
    "PROTEINS": dict(graphs=1113, nodes=43471, edges=162088, class_counts={1: 663, 2: 450}),
}


@pytest.fixture(scope="module")
def mutag(shared_data_dir: Path):
    return load_tu("MUTAG", root=shared_data_dir, download=False)


def copy_dataset(shared_data_dir: Path, root: Path, name: str) -> Path:
    folder = root / "tu" / name
    folder.mkdir(parents=True)
    for file_name in TU_CHECKSUMS[name]:
        shutil.copy(shared_data_dir / "tu" / name / file_name, folder / file_name)
    return folder


# ------------------------------------------------------------------ real datasets


def test_mutag_statistics_match_shared_readme(mutag):
    expected = README_STATS["MUTAG"]
    stats = mutag.statistics()
    assert stats["graphs"] == expected["graphs"]
    assert stats["nodes"] == expected["nodes"]
    assert stats["directed_edges"] == expected["edges"]
    assert mutag.graph_label_values == [-1, 1]
    assert [stats["class_0"], stats["class_1"]] == [63, 125]
    assert mutag.node_label_values == list(range(7))
    assert mutag.edge_label_values == list(range(4))
    assert mutag.num_features == 7 and mutag.num_edge_labels == 4


def test_mutag_features_are_one_hot_and_edge_labels_kept_as_categories(mutag):
    for graph in mutag:
        assert isinstance(graph, TUGraph)
        assert torch.equal(graph.x.sum(dim=1), torch.ones(graph.num_nodes))
        assert torch.equal(graph.x.argmax(dim=1), graph.node_label)
        assert graph.edge_label.dtype == torch.long
        assert torch.equal(
            graph.edge_attr, torch.nn.functional.one_hot(graph.edge_label, 4).float()
        )
        assert graph.y.shape == (1,) and int(graph.y) in (0, 1)
        graph.validate()


def test_mutag_edges_are_local_and_symmetric(mutag):
    for graph in mutag:
        assert int(graph.edge_index.min()) >= 0 and int(graph.edge_index.max()) < graph.num_nodes
        forward = {tuple(e) for e in graph.edge_index.T.tolist()}
        assert forward == {(j, i) for i, j in forward}


def test_proteins_statistics_match_shared_readme(shared_data_dir):
    proteins = load_tu("PROTEINS", root=shared_data_dir, download=False)
    expected = README_STATS["PROTEINS"]
    stats = proteins.statistics()
    assert (stats["graphs"], stats["nodes"], stats["directed_edges"]) == (
        expected["graphs"],
        expected["nodes"],
        expected["edges"],
    )
    assert proteins.graph_label_values == [1, 2]
    assert [stats["class_0"], stats["class_1"]] == [663, 450]
    # 3 one-hot node labels followed by 1 real attribute; no edge labels.
    assert proteins.num_features == 4 and proteins.num_node_attributes == 1
    assert proteins.num_edge_labels == 0 and proteins[0].edge_label is None


# -------------------------------------------------------------- checksums, download


def test_checksum_mismatch_is_refused_naming_the_file(shared_data_dir, tmp_path):
    folder = copy_dataset(shared_data_dir, tmp_path, "MUTAG")
    with open(folder / "MUTAG_graph_labels.txt", "a") as handle:
        handle.write("1\n")
    with pytest.raises(DatasetError, match=r"checksum mismatch for .*MUTAG_graph_labels\.txt"):
        load_tu("MUTAG", root=tmp_path, download=False)


def test_missing_files_without_download_name_the_folder(tmp_path):
    with pytest.raises(DatasetError, match=r"missing file\(s\) .*MUTAG_A\.txt.*download=False"):
        load_tu("MUTAG", root=tmp_path, download=False)


def make_zip(shared_data_dir: Path, path: Path, corrupt: str | None = None) -> str:
    with zipfile.ZipFile(path, "w") as archive:
        for file_name in TU_CHECKSUMS["MUTAG"]:
            data = (shared_data_dir / "tu" / "MUTAG" / file_name).read_bytes()
            if file_name == corrupt:
                data = data[:-10]
            archive.writestr(f"MUTAG/{file_name}", data)
        archive.writestr("MUTAG/README.txt", "not needed")
    return path.as_uri()


def test_download_extracts_verifies_and_caches(shared_data_dir, tmp_path):
    url = make_zip(shared_data_dir, tmp_path / "MUTAG.zip")
    cache = tmp_path / "cache"
    dataset = load_tu("MUTAG", root=cache, url=url)
    assert len(dataset) == 188
    cached = sorted(p.name for p in (cache / "tu" / "MUTAG").iterdir())
    assert cached == sorted(TU_CHECKSUMS["MUTAG"])
    assert sorted(p.name for p in (cache / "tu").iterdir()) == ["MUTAG"]  # no temp leftovers


def test_download_with_a_corrupt_file_caches_nothing(shared_data_dir, tmp_path):
    url = make_zip(shared_data_dir, tmp_path / "MUTAG.zip", corrupt="MUTAG_A.txt")
    cache = tmp_path / "cache"
    with pytest.raises(DatasetError, match=r"checksum mismatch for .*MUTAG_A\.txt"):
        load_tu("MUTAG", root=cache, url=url)
    assert list((cache / "tu" / "MUTAG").iterdir()) == []
    assert sorted(p.name for p in (cache / "tu").iterdir()) == ["MUTAG"]


def test_unreachable_download_says_where_to_put_the_files(tmp_path):
    with pytest.raises(DatasetError, match=r"could not download .*Place the files"):
        load_tu("MUTAG", root=tmp_path, url=(tmp_path / "absent.zip").as_uri())


# ------------------------------------------------------------------ malformed files

TINY = {
    # Graph 1: nodes 1-3 (a path 1-2-3), graph 2: nodes 4-5 (one edge).
    "A": "1, 2\n2, 1\n2, 3\n3, 2\n4, 5\n5, 4\n",
    "graph_indicator": "1\n1\n1\n2\n2\n",
    "graph_labels": "1\n-1\n",
    "node_labels": "0\n1\n0\n2\n2\n",
    "edge_labels": "0\n0\n1\n1\n0\n0\n",
}


def write_tiny(root: Path, **overrides: str) -> Path:
    folder = root / "tu" / "TINY"
    folder.mkdir(parents=True, exist_ok=True)
    for suffix, text in {**TINY, **overrides}.items():
        (folder / f"TINY_{suffix}.txt").write_text(text)
    return folder


def test_well_formed_tiny_dataset_is_parsed_exactly(tmp_path):
    write_tiny(tmp_path)
    dataset = load_tu("TINY", root=tmp_path)  # no pinned sums: read unverified
    first, second = dataset
    assert torch.equal(first.edge_index, torch.tensor([[0, 1, 1, 2], [1, 0, 2, 1]]))
    assert torch.equal(second.edge_index, torch.tensor([[0, 1], [1, 0]]))
    assert torch.equal(first.edge_label, torch.tensor([0, 0, 1, 1]))
    assert torch.equal(first.node_label, torch.tensor([0, 1, 0]))
    assert first.x.shape == (3, 3) and second.x.tolist() == [[0, 0, 1], [0, 0, 1]]
    assert (int(first.y), int(second.y)) == (1, 0)  # -1 -> 0, 1 -> 1
    assert dataset.graph_label_values == [-1, 1]


@pytest.mark.parametrize(
    ("overrides", "file_name", "line", "words"),
    [
        ({"node_labels": "0\n1\n0\n2\n"}, "TINY_node_labels.txt", 5, "ends after 4 lines"),
        ({"node_labels": "0\n1\n0\n2\n2\n1\n"}, "TINY_node_labels.txt", 6, "extra line"),
        ({"edge_labels": "0\n0\n1\n1\n0\n"}, "TINY_edge_labels.txt", 6, "ends after 5"),
        ({"A": "1, 2\n2, 1\n2, 3\n3, 9\n4, 5\n5, 4\n"}, "TINY_A.txt", 4, "out of range"),
        ({"A": "1, 2\n0, 1\n2, 3\n3, 2\n4, 5\n5, 4\n"}, "TINY_A.txt", 2, "out of range"),
        ({"A": "1, 2\n2, 1\n2, x\n3, 2\n4, 5\n5, 4\n"}, "TINY_A.txt", 3, "integer"),
        ({"A": "1, 2\n2, 1\n2, 3\n3, 4\n4, 5\n5, 4\n"}, "TINY_A.txt", 4, "joins graph 1"),
        ({"A": "1, 2\n2\n2, 3\n3, 2\n4, 5\n5, 4\n"}, "TINY_A.txt", 2, "2 comma-separated"),
        ({"graph_indicator": "1\n1\n1\n3\n2\n"}, "TINY_graph_indicator.txt", 4, "out of range"),
        ({"graph_indicator": "1\n2\n1\n2\n2\n"}, "TINY_graph_indicator.txt", 3, "contiguous"),
        ({"graph_labels": "1\nfoo\n"}, "TINY_graph_labels.txt", 2, "integer"),
    ],
)
def test_malformed_file_is_refused_naming_file_and_line(
    tmp_path, overrides, file_name, line, words
):
    write_tiny(tmp_path, **overrides)
    with pytest.raises(DatasetError) as error:
        load_tu("TINY", root=tmp_path)
    message = str(error.value)
    assert f"{file_name}, line {line}:" in message, message
    assert words in message, message


def test_malformed_node_attributes_are_refused_naming_file_and_line(tmp_path):
    folder = write_tiny(tmp_path)
    (folder / "TINY_node_attributes.txt").write_text("1.0, 2\n0.5, 1\n1, 1\n2, nan?\n3, 3\n")
    with pytest.raises(DatasetError, match=r"TINY_node_attributes\.txt, line 4: expected numbers"):
        read_tu_folder(folder, "TINY")


def test_unknown_dataset_without_files_is_not_downloaded(tmp_path):
    with pytest.raises(DatasetError, match="no pinned checksums"):
        load_tu("ENZYMES", root=tmp_path)
