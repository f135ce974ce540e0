"""use_huge_pages: large CPU tensors get 2 MiB-aligned mappings advised for huge pages.

The allocator changes where tensors live, never what is computed: these tests check the
bookkeeping (blocks mapped while alive, unmapped when freed, the previous allocator back
after removal), the huge-page advice the kernel sees, and that a training step gives the
same bits with it as without.
"""

from __future__ import annotations

import json
import pickle
import subprocess
import sys

import pytest
import torch

from fused_cases import needs_cpp
from gatkit.nn import GATv2Conv
from gatkit.train import allocator as allocator_module
from gatkit.train import (
    huge_page_stats,
    huge_pages,
    huge_pages_in_use,
    stop_huge_pages,
    use_huge_pages,
)
from gatkit.train.allocator import transparent_huge_page_mode

THP_ALLOWED = transparent_huge_page_mode() in ("always", "madvise")
needs_thp = pytest.mark.skipif(
    not THP_ALLOWED, reason="the kernel's transparent huge pages are off or absent here"
)
pytestmark = [needs_cpp, needs_thp]


@pytest.fixture(autouse=True)
def without_the_allocator():
    """Each test starts and ends without it: an in-process ``gatkit train`` (the CLI tests)
    leaves it in place, as the command does for its own process."""
    stop_huge_pages()
    yield
    stop_huge_pages()


LARGE = 40 * 2**20  # bytes: above the default 32 MiB threshold
TWO_MIB = 2 * 2**20


def vm_flags_of(address: int) -> list[str]:
    """The VmFlags of the mapping of this process that holds ``address``."""
    flags: list[str] = []
    inside = False
    with open("/proc/self/smaps") as smaps:
        lines = smaps.readlines()
    for line in lines:
        head = line.split()[0] if line.strip() else ""
        if "-" in head and all(c in "0123456789abcdef-" for c in head):
            start, end = (int(part, 16) for part in head.split("-"))
            inside = start <= address < end
        elif inside and line.startswith("VmFlags:"):
            flags = line.split()[1:]
    return flags


def test_large_tensors_are_mapped_aligned_and_unmapped_when_freed():
    before = huge_page_stats()
    with huge_pages() as active:
        assert active and huge_pages_in_use()
        large = torch.arange(LARGE // 4, dtype=torch.float32)
        small = torch.ones(1000)
        stats = huge_page_stats()
        assert stats["live_blocks"] == before["live_blocks"] + 1
        assert stats["live_bytes"] - before["live_bytes"] == LARGE  # a multiple of 4 KiB
        assert stats["blocks_served"] == before["blocks_served"] + 1
        assert large.data_ptr() % TWO_MIB == 0
        assert "hg" in vm_flags_of(large.data_ptr())  # MADV_HUGEPAGE before the first touch
        assert float(large[-1]) == LARGE // 4 - 1 and float(small.sum()) == 1000.0
        del large
        assert huge_page_stats()["live_blocks"] == before["live_blocks"]
        assert huge_page_stats()["live_bytes"] == before["live_bytes"]
    assert not huge_pages_in_use()


def test_blocks_outlive_the_allocator_and_the_previous_one_comes_back():
    with huge_pages():
        kept = torch.full((LARGE // 4,), 3.0)
    served = huge_page_stats()["blocks_served"]
    other = torch.empty(LARGE // 4)  # the previous allocator's, not counted
    assert huge_page_stats()["blocks_served"] == served
    assert float(kept.sum()) == 3.0 * (LARGE // 4)
    live = huge_page_stats()["live_blocks"]
    del kept, other
    assert huge_page_stats()["live_blocks"] == live - 1


def test_tensor_operations_on_its_blocks():
    with huge_pages(min_bytes=4096):
        grown = torch.ones(LARGE // 8)
        grown.resize_(LARGE // 4)  # storage re-allocated through the allocator, data copied
        assert float(grown[: LARGE // 8].sum()) == LARGE // 8
        shared = grown.numpy()  # a view of the same block
        shared[0] = 7.0
        assert float(grown[0]) == 7.0
        copied = pickle.loads(pickle.dumps(grown[:5000].clone()))
        assert torch.equal(copied, grown[:5000])
        empty = torch.empty(0)  # zero bytes: the previous allocator's
        assert empty.numel() == 0
        del grown, shared
    assert not huge_pages_in_use()


def test_raw_allocation_of_both_kinds_of_block():
    from gatkit.ops.fused_cpu import cpp_kernels

    kernels = cpp_kernels()
    with huge_pages():
        before = huge_page_stats()
        assert kernels.huge_pages_raw_roundtrip(LARGE)  # its own block, found in its table
        assert kernels.huge_pages_raw_roundtrip(4096)  # the previous allocator's
        after = huge_page_stats()
        assert after["blocks_served"] == before["blocks_served"] + 1
        assert after["live_blocks"] == before["live_blocks"]  # unmapped by the raw free
    assert kernels.huge_pages_raw_roundtrip(4096)  # after removal: torch's own again


def gatv2_step(seed: int) -> tuple[torch.Tensor, list[torch.Tensor]]:
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(3000, 32, generator=generator)
    edge_index = torch.randint(0, 3000, (2, 30_000), generator=generator)
    torch.manual_seed(seed)
    layer = GATv2Conv(32, 8, heads=4, dropout=0.5)
    out = layer(x, edge_index)
    out.square().sum().backward()
    return out.detach(), [p.grad for p in layer.parameters()]


def test_a_training_step_gives_the_same_bits_with_every_tensor_on_its_blocks():
    plain_out, plain_grads = gatv2_step(5)
    with huge_pages(min_bytes=1) as active:  # every non-empty tensor through the allocator
        assert active
        out, grads = gatv2_step(5)
        assert huge_page_stats()["blocks_served"] > 0
    assert torch.equal(out, plain_out)
    assert all(torch.equal(a, b) for a, b in zip(grads, plain_grads, strict=True))


def test_arguments_and_the_cases_where_it_does_nothing(monkeypatch):
    assert stop_huge_pages() is False  # not in place (the fixture removed it)
    with pytest.raises(ValueError, match="min_bytes"):
        use_huge_pages(-1)
    with pytest.raises(ValueError, match="min_bytes"):
        use_huge_pages(True)
    monkeypatch.setattr(allocator_module, "transparent_huge_page_mode", lambda: "never")
    assert use_huge_pages() is False and not huge_pages_in_use()
    monkeypatch.setattr(allocator_module, "transparent_huge_page_mode", lambda: "madvise")
    monkeypatch.setattr(allocator_module, "freed_memory_is_kept", lambda: True)
    assert use_huge_pages() is False and not huge_pages_in_use()


def test_in_place_twice_and_removed_once():
    try:
        assert use_huge_pages() is True
        assert use_huge_pages(4096) is True  # already in place: unchanged
        assert huge_page_stats()["min_bytes"] == 32 * 2**20
    finally:
        assert stop_huge_pages() is True
    assert stop_huge_pages() is False


def test_worker_processes_get_the_parents_threshold_zero_included():
    from gatkit.train.experiment import _huge_page_threshold

    assert _huge_page_threshold() is None  # not in place: workers leave glibc's policy
    with huge_pages(min_bytes=0):
        assert _huge_page_threshold() == 0  # a threshold, not "off"
    with huge_pages():
        assert _huge_page_threshold() == 32 * 2**20


@pytest.mark.parametrize("flag, expected", [(None, True), ("--no-huge-pages", False)])
def test_train_option_is_recorded_in_the_summary(tmp_path, shared_data_dir, flag, expected):
    argv = [sys.executable, "-m", "gatkit.cli.main", "train", "--dataset", "cora", "--json"]
    argv += ["--epochs", "2", "--threads", "1", "--quiet"] + ([flag] if flag else [])
    argv += ["--data-dir", str(shared_data_dir), "--out", str(tmp_path)]
    done = subprocess.run(argv, capture_output=True, text=True, check=True)
    assert json.loads(done.stdout)["huge_pages"] is expected
