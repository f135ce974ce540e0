"""Checkpoints: atomic writes, safe loading, refusal of foreign or damaged files."""

from __future__ import annotations

import os
import pickle

import pytest
import torch

from gatkit.errors import CheckpointError
from gatkit.train import checkpoint as checkpoint_module
from gatkit.train.checkpoint import load_checkpoint, save_checkpoint


def payload(value: float, kind: str = "gat-node-classifier") -> dict:
    return {
        "model_kind": kind,
        "config": {"operator": "gat"},
        "model_args": {"in_channels": 4, "num_classes": 2},
        "model_state": {"weight": torch.full((3, 3), value)},
        "epoch": int(value),
    }


def test_round_trip_keeps_contents_and_adds_format_tag(tmp_path):
    path = save_checkpoint(tmp_path / "sub" / "ck.pt", payload(7.0))
    record = load_checkpoint(path, expected_kind="gat-node-classifier")
    assert record["format"] == "gatkit-checkpoint" and record["version"] == 1
    assert record["epoch"] == 7
    assert torch.equal(record["model_state"]["weight"], torch.full((3, 3), 7.0))


def test_failure_during_write_leaves_previous_checkpoint_intact(tmp_path, monkeypatch):
    path = tmp_path / "ck.pt"
    save_checkpoint(path, payload(1.0))
    before = path.read_bytes()

    def failing_fsync(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(checkpoint_module.os, "fsync", failing_fsync)
    with pytest.raises(OSError, match="No space"):
        save_checkpoint(path, payload(2.0))
    assert path.read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["ck.pt"]  # no temporary file left behind
    monkeypatch.undo()
    assert load_checkpoint(path)["epoch"] == 1


def test_unpicklable_payload_leaves_previous_checkpoint_intact(tmp_path):
    path = tmp_path / "ck.pt"
    save_checkpoint(path, payload(1.0))
    broken = payload(2.0)
    broken["callback"] = lambda: None  # torch.save fails part-way through
    with pytest.raises(Exception):  # noqa: B017 - pickling errors vary by Python version
        save_checkpoint(path, broken)
    assert load_checkpoint(path)["epoch"] == 1
    assert sorted(os.listdir(tmp_path)) == ["ck.pt"]


def test_checkpoint_of_another_model_kind_is_refused_by_name(tmp_path):
    path = save_checkpoint(tmp_path / "ck.pt", payload(1.0, kind="graph-classifier"))
    with pytest.raises(CheckpointError, match="'graph-classifier' model, expected 'gat-node"):
        load_checkpoint(path, expected_kind="gat-node-classifier")


def test_file_without_format_tag_is_refused(tmp_path):
    path = tmp_path / "weights.pt"
    torch.save({"weight": torch.zeros(2)}, path)
    with pytest.raises(CheckpointError, match="not a gatkit checkpoint"):
        load_checkpoint(path)


def test_garbage_and_missing_files_are_refused(tmp_path):
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"this is not a checkpoint")
    with pytest.raises(CheckpointError, match="not a readable gatkit checkpoint"):
        load_checkpoint(garbage)
    with pytest.raises(CheckpointError, match="no checkpoint file"):
        load_checkpoint(tmp_path / "absent.pt")


class _Exploit:
    def __reduce__(self):
        return (os.system, ("echo pwned > /dev/null",))


def test_pickle_that_would_run_code_is_refused(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"format": "gatkit-checkpoint", "payload": _Exploit()}, path, pickle_module=pickle)
    with pytest.raises(CheckpointError, match="not a readable gatkit checkpoint"):
        load_checkpoint(path)


def test_newer_layout_version_is_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(checkpoint_module, "VERSION", 99)
    path = save_checkpoint(tmp_path / "ck.pt", payload(1.0))
    monkeypatch.setattr(checkpoint_module, "VERSION", 1)
    with pytest.raises(CheckpointError, match="version 99"):
        load_checkpoint(path)
