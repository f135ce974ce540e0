"""keep_freed_memory: a freed large tensor's memory is reused instead of page-faulted again."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from gatkit.train import freed_memory_is_kept

glibc_only = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="keep_freed_memory acts on glibc's malloc"
)

FAULTS_OF_A_REPEATED_ALLOCATION = """
import resource, sys, torch
from gatkit.train import keep_freed_memory
kept = keep_freed_memory() if sys.argv[1] == "keep" else False
# 64 MiB: above glibc's largest mmap threshold (32 MiB). The faults of the sixth allocation:
# in the first few the heap may still grow (seen: a fresh block at the second or third).
for _ in range(6):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    torch.empty(16 * 2**20).fill_(1.0)  # written, then freed at once
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
print(kept, faults)
"""


def faults_of_sixth_allocation(policy: str) -> tuple[str, int]:
    done = subprocess.run(
        [sys.executable, "-c", FAULTS_OF_A_REPEATED_ALLOCATION, policy],
        capture_output=True,
        text=True,
        check=True,
    )
    kept, faults = done.stdout.split()
    return kept, int(faults)


@glibc_only
def test_freed_memory_is_reused_only_when_kept():
    kept, faults = faults_of_sixth_allocation("keep")
    assert kept == "True"
    assert faults < 1000  # 64 MiB are 16,384 pages of 4 KiB
    kept, faults = faults_of_sixth_allocation("glibc")
    assert kept == "False"
    assert faults > 10_000  # glibc's default: mmap, munmap, page-faulted again


def test_the_test_process_keeps_glibcs_default_policy():
    assert freed_memory_is_kept() is False


@glibc_only
def test_train_option_is_recorded_in_the_summary(tmp_path, shared_data_dir):
    argv = [sys.executable, "-m", "gatkit.cli.main", "train", "--dataset", "cora", "--json"]
    argv += ["--epochs", "2", "--threads", "1", "--keep-freed-memory", "--quiet"]
    argv += ["--data-dir", str(shared_data_dir), "--out", str(tmp_path)]
    done = subprocess.run(argv, capture_output=True, text=True, check=True)
    assert json.loads(done.stdout)["keep_freed_memory"] is True
