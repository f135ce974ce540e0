"""load_planetoid: statistics against the shared data README, preprocessing, file safety."""

from __future__ import annotations

import os
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from gatkit.data import Graph, planetoid
from gatkit.data.download import Digest, check_digest, git_blob_id_of, sha256_of
from gatkit.data.planetoid import CHECKSUMS, load_planetoid, read_planetoid_pickle
from gatkit.errors import DatasetError

# Verified statistics from shared/data/README.md, section 1.
README_STATS = {
    "cora": dict(
        nodes=2708, features=1433, classes=7, edges=10556, nnz=49216, split=(140, 500, 1000)
    ),
    "citeseer": dict(
        nodes=3327, features=3703, classes=6, edges=9104, nnz=105165, split=(120, 500, 1000)
    ),
    "pubmed": dict(
        nodes=19717, features=500, classes=3, edges=88648, nnz=988031, split=(60, 500, 1000)
    ),
}
README_UNLABELLED = {"cora": 0, "citeseer": 15, "pubmed": 0}


@pytest.fixture(scope="module")
def loaded(shared_data_dir: Path) -> dict[str, Graph]:
    return {
        name: load_planetoid(name, root=shared_data_dir, download=False) for name in README_STATS
    }


def copy_raw(shared_data_dir: Path, name: str, root: Path) -> Path:
    """Copy one dataset's raw files to ``root`` in the cache layout; return the raw folder."""
    raw = root / "planetoid" / name / "raw"
    shutil.copytree(shared_data_dir / "planetoid" / name / "raw", raw)
    return raw


# ----------------------------------------------------------------------------- statistics
@pytest.mark.parametrize("name", list(README_STATS))
def test_statistics_match_the_shared_readme(loaded, name):
    graph = loaded[name].validate()
    stats = README_STATS[name]
    assert graph.name == name
    assert graph.num_nodes == stats["nodes"]
    assert graph.num_features == stats["features"]
    assert graph.num_classes == stats["classes"]
    assert graph.num_edges == stats["edges"]
    assert int((graph.x != 0).sum()) == stats["nnz"]
    split = tuple(int(getattr(graph, m).sum()) for m in ("train_mask", "val_mask", "test_mask"))
    assert split == stats["split"]
    assert int((graph.y == -1).sum()) == README_UNLABELLED[name]
    assert graph.x.dtype == torch.float32
    assert graph.edge_index.dtype == torch.long
    assert graph.y.dtype == torch.long


@pytest.mark.parametrize("name", list(README_STATS))
def test_train_split_has_twenty_nodes_per_class(loaded, name):
    graph = loaded[name]
    counts = torch.bincount(graph.y[graph.train_mask], minlength=graph.num_classes)
    assert counts.tolist() == [20] * graph.num_classes


@pytest.mark.parametrize("name", list(README_STATS))
def test_split_is_first_len_y_then_next_500_then_test_index(loaded, shared_data_dir, name):
    graph = loaded[name]
    n_train = README_STATS[name]["split"][0]
    assert graph.train_mask.nonzero().flatten().tolist() == list(range(n_train))
    assert graph.val_mask.nonzero().flatten().tolist() == list(range(n_train, n_train + 500))
    index_file = shared_data_dir / "planetoid" / name / "raw" / f"ind.{name}.test.index"
    test_index = sorted(int(line) for line in index_file.read_text().split())
    assert graph.test_mask.nonzero().flatten().tolist() == test_index
    overlap = graph.train_mask.int() + graph.val_mask.int() + graph.test_mask.int()
    assert int(overlap.max()) == 1
    assert bool((graph.y[graph.train_mask | graph.val_mask | graph.test_mask] >= 0).all())


@pytest.mark.parametrize("name", list(README_STATS))
def test_edges_are_symmetric_deduplicated_and_free_of_self_loops(loaded, name):
    graph = loaded[name]
    src, dst = graph.edge_index
    n = graph.num_nodes
    forward = src * n + dst
    backward = dst * n + src
    assert torch.unique(forward).numel() == graph.num_edges
    assert torch.equal(torch.sort(forward).values, torch.sort(backward).values)
    assert not bool((src == dst).any())


@pytest.mark.parametrize("name", list(README_STATS))
def test_nonzero_feature_rows_sum_to_one(loaded, name):
    x = loaded[name].x
    row_sum = x.sum(dim=1)
    nonzero = row_sum != 0
    torch.testing.assert_close(row_sum[nonzero], torch.ones(int(nonzero.sum())))
    assert bool((x >= 0).all())


def test_citeseer_nodes_missing_from_test_index_are_zero_unlabelled_and_in_no_split(loaded):
    graph = loaded["citeseer"]
    missing = (graph.y == -1).nonzero().flatten()
    assert missing.numel() == 15
    assert int(missing.min()) >= 2312  # inside the test.index range 2312..3326
    assert bool((graph.x[missing] == 0).all())
    in_split = graph.train_mask | graph.val_mask | graph.test_mask
    assert not bool(in_split[missing].any())


def test_unnormalized_cora_features_are_binary_word_indicators(shared_data_dir):
    graph = load_planetoid("cora", root=shared_data_dir, download=False, normalize_features=False)
    values = torch.unique(graph.x)
    assert values.tolist() == [0.0, 1.0]
    assert int(graph.x.sum()) == 49216


def test_features_place_test_rows_at_their_test_index(shared_data_dir):
    raw = shared_data_dir / "planetoid" / "cora" / "raw"
    tx = read_planetoid_pickle(raw / "ind.cora.tx").toarray()
    allx = read_planetoid_pickle(raw / "ind.cora.allx").toarray()
    ty = read_planetoid_pickle(raw / "ind.cora.ty")
    order = [int(line) for line in (raw / "ind.cora.test.index").read_text().split()]
    graph = load_planetoid("cora", root=shared_data_dir, download=False, normalize_features=False)
    np.testing.assert_array_equal(graph.x[order].numpy(), tx)
    np.testing.assert_array_equal(graph.x[: allx.shape[0]].numpy(), allx)
    np.testing.assert_array_equal(graph.y[order].numpy(), ty.argmax(axis=1))


def test_name_is_case_insensitive_and_root_defaults_to_gatkit_data(shared_data_dir, monkeypatch):
    monkeypatch.setenv("GATKIT_DATA", str(shared_data_dir))
    graph = load_planetoid("Cora", download=False)
    assert graph.name == "cora"
    assert graph.num_nodes == 2708


def test_unknown_name_is_rejected_with_the_valid_names():
    with pytest.raises(ValueError, match="cora, citeseer, pubmed; got 'reddit'"):
        load_planetoid("reddit", download=False)


# --------------------------------------------------------------------------- checksums
def test_every_raw_file_is_pinned_and_matches_the_shared_copy(shared_data_dir):
    for name, checksums in CHECKSUMS.items():
        assert len(checksums) == 8
        for file_name, expected in checksums.items():
            path = shared_data_dir / "planetoid" / name / "raw" / file_name
            assert check_digest(path, expected) is None, file_name


def test_pubmed_allx_accepts_upstream_blob_id_or_documented_reconstruction():
    expected = CHECKSUMS["pubmed"]["ind.pubmed.allx"]
    assert Digest("git-blob", "3b86bccf08111c37c632a9dd8ab63db25ea76361") in [
        Digest(d.kind, d.value) for d in expected
    ]
    assert any(
        d.kind == "sha256" and d.value.startswith("36492ccf") and len(d.value) == 64
        for d in expected
    )


def test_git_blob_id_equals_git_hash_object(shared_data_dir):
    path = shared_data_dir / "planetoid" / "cora" / "raw" / "ind.cora.x"
    assert git_blob_id_of(path) == "c4a91d008245403e7f26aa616b437191509793c0"


def test_any_matching_alternative_digest_accepts_a_file(tmp_path):
    path = tmp_path / "file.bin"
    path.write_bytes(b"hello\n")
    blob = git_blob_id_of(path)
    assert blob == "ce013625030ba8dba906f756967f9e9ca394464a"  # git hash-object of "hello\n"
    wrong = Digest("sha256", "0" * 64)
    assert check_digest(path, [wrong, Digest("git-blob", blob)]) is None
    message = check_digest(path, [wrong, Digest("git-blob", "1" * 40)])
    assert message is not None
    assert sha256_of(path) in message and blob in message


def test_corrupt_file_raises_dataset_error_naming_file_and_both_checksums(
    shared_data_dir, tmp_path
):
    raw = copy_raw(shared_data_dir, "cora", tmp_path)
    target = raw / "ind.cora.tx"
    target.write_bytes(target.read_bytes()[:1000])  # truncated
    with pytest.raises(DatasetError) as caught:
        load_planetoid("cora", root=tmp_path, download=False)
    message = str(caught.value)
    assert "ind.cora.tx" in message
    assert CHECKSUMS["cora"]["ind.cora.tx"] in message
    assert sha256_of(target) in message


def test_corrupt_cached_file_is_not_silently_redownloaded(shared_data_dir, tmp_path, monkeypatch):
    raw = copy_raw(shared_data_dir, "cora", tmp_path)
    monkeypatch.setattr(planetoid, "PLANETOID_URL", "file:///nonexistent/")
    (raw / "ind.cora.graph").write_bytes(b"\x00" * 100)
    with pytest.raises(DatasetError, match=r"ind\.cora\.graph"):
        load_planetoid("cora", root=tmp_path, download=True)


def test_missing_files_offline_error_lists_the_files_and_the_folder(shared_data_dir, tmp_path):
    raw = copy_raw(shared_data_dir, "citeseer", tmp_path)
    (raw / "ind.citeseer.graph").unlink()
    (raw / "ind.citeseer.ty").unlink()
    with pytest.raises(DatasetError) as caught:
        load_planetoid("citeseer", root=tmp_path, download=False)
    message = str(caught.value)
    assert "ind.citeseer.graph" in message
    assert "ind.citeseer.ty" in message
    assert "ind.citeseer.allx" not in message
    assert str(raw) in message


# ---------------------------------------------------------------------------- download
def test_download_caches_verified_files_in_the_cache_layout(shared_data_dir, tmp_path, monkeypatch):
    source = shared_data_dir / "planetoid" / "cora" / "raw"
    monkeypatch.setattr(planetoid, "PLANETOID_URL", source.as_uri() + "/")
    root = tmp_path / "cache"
    graph = load_planetoid("cora", root=root)
    assert graph.num_nodes == 2708
    raw = root / "planetoid" / "cora" / "raw"
    assert sorted(p.name for p in raw.iterdir()) == sorted(CHECKSUMS["cora"])
    for file_name, expected in CHECKSUMS["cora"].items():
        assert sha256_of(raw / file_name) == expected


def test_download_of_corrupt_file_caches_nothing_and_leaves_no_temp_file(
    shared_data_dir, tmp_path, monkeypatch
):
    source = copy_raw(shared_data_dir, "cora", tmp_path / "server")
    corrupt = source / "ind.cora.graph"
    corrupt.write_bytes(corrupt.read_bytes()[:-10])
    monkeypatch.setattr(planetoid, "PLANETOID_URL", source.as_uri() + "/")
    root = tmp_path / "cache"
    with pytest.raises(DatasetError) as caught:
        load_planetoid("cora", root=root)
    message = str(caught.value)
    assert "ind.cora.graph" in message
    assert CHECKSUMS["cora"]["ind.cora.graph"] in message
    assert sha256_of(corrupt) in message
    raw = root / "planetoid" / "cora" / "raw"
    assert not (raw / "ind.cora.graph").exists()
    assert [p.name for p in raw.iterdir() if p.name.startswith(".")] == []
    assert (raw / "ind.cora.x").exists()  # the good files were kept


def test_download_of_missing_remote_file_reports_where_to_place_it(
    shared_data_dir, tmp_path, monkeypatch
):
    source = copy_raw(shared_data_dir, "cora", tmp_path / "server")
    (source / "ind.cora.ally").unlink()
    monkeypatch.setattr(planetoid, "PLANETOID_URL", source.as_uri() + "/")
    root = tmp_path / "cache"
    with pytest.raises(DatasetError) as caught:
        load_planetoid("cora", root=root)
    message = str(caught.value)
    assert "ind.cora.ally" in message
    assert str(root / "planetoid" / "cora" / "raw") in message


# ------------------------------------------------------------------ restricted unpickler
class _RunsShellCommand:
    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self):
        return (os.system, (self.command,))


def test_restricted_unpickler_refuses_a_pickle_that_would_run_a_command(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "ind.evil.x"
    path.write_bytes(pickle.dumps(_RunsShellCommand(f"touch {marker}"), protocol=2))
    with pytest.raises(DatasetError, match="refusing to load") as caught:
        read_planetoid_pickle(path)
    message = str(caught.value)
    assert "system" in message and str(path) in message
    assert "not a Planetoid data class" in message
    assert not marker.exists()


def test_restricted_unpickler_refuses_builtins_outside_the_allow_list(tmp_path):
    path = tmp_path / "ind.evil.graph"
    path.write_bytes(pickle.dumps(eval, protocol=2))
    refused = r"refusing to load eval \((__builtin__|builtins)\.eval\)"
    with pytest.raises(DatasetError, match=refused):
        read_planetoid_pickle(path)


def test_restricted_unpickler_reports_garbage_as_malformed(tmp_path):
    path = tmp_path / "ind.bad.y"
    path.write_bytes(b"not a pickle at all")
    with pytest.raises(DatasetError, match=r"could not read .*ind\.bad\.y"):
        read_planetoid_pickle(path)


def test_restricted_unpickler_reads_every_planetoid_file_type(shared_data_dir):
    raw = shared_data_dir / "planetoid" / "citeseer" / "raw"
    allx = read_planetoid_pickle(raw / "ind.citeseer.allx")
    ally = read_planetoid_pickle(raw / "ind.citeseer.ally")
    graph = read_planetoid_pickle(raw / "ind.citeseer.graph")
    assert allx.shape == (2312, 3703)
    assert ally.shape == (2312, 6)
    assert isinstance(graph, dict) and len(graph) == 3327


def test_well_checksummed_but_inconsistent_files_raise_malformed_naming_the_file(
    shared_data_dir, tmp_path, monkeypatch
):
    import scipy.sparse as sp

    raw = copy_raw(shared_data_dir, "cora", tmp_path)
    bad = raw / "ind.cora.tx"
    bad.write_bytes(pickle.dumps(sp.csr_matrix((1000, 10), dtype=np.float32), protocol=4))
    pinned = dict(CHECKSUMS["cora"], **{"ind.cora.tx": sha256_of(bad)})
    monkeypatch.setitem(CHECKSUMS, "cora", pinned)
    with pytest.raises(DatasetError, match=r"malformed Planetoid file .*ind\.cora\.tx: 10 columns"):
        load_planetoid("cora", root=tmp_path, download=False)
