"""Keep-mask generators: torch's stream (F.dropout's masks) and the parallel Philox one."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F

from gatkit import ops
from gatkit.nn import GATConv, GATv2Conv, lean_dropout
from gatkit.ops.fused_cpu import cpp_kernels

needs_extension = pytest.mark.skipif(
    cpp_kernels() is None, reason="the C++ extension is not built here (GATKIT_NO_CPP)"
)


def test_torch_generator_draws_f_dropouts_mask():
    torch.manual_seed(4)
    keep = ops.draw_keep_mask((50, 8), 0.4, "cpu")
    torch.manual_seed(4)
    reference = F.dropout(torch.ones(50, 8), 0.6, True) != 0
    assert keep.dtype == torch.uint8
    assert torch.equal(keep.bool(), reference)


@needs_extension
def test_philox_masks_have_the_keep_probability_and_follow_the_seed():
    with ops.use_mask_generator("philox"):
        torch.manual_seed(0)
        first = ops.draw_keep_mask((1000, 1000), 0.4, "cpu")
        second = ops.draw_keep_mask((1000, 1000), 0.4, "cpu")
        torch.manual_seed(0)
        again = ops.draw_keep_mask((1000, 1000), 0.4, "cpu")
    assert ops.get_mask_generator() == "torch"  # restored after the block
    assert abs(first.double().mean().item() - 0.4) < 3e-3  # 1e6 draws: std 5e-4
    assert torch.equal(first, again)
    # independent draws: they disagree with probability 2 * 0.4 * 0.6
    assert abs((first != second).double().mean().item() - 0.48) < 3e-3
    # neighbours are uncorrelated (entries of one Philox block and of adjacent blocks)
    flat = first.view(-1).double()
    for lag in (1, 3, 4, 5):
        assert abs(torch.corrcoef(torch.stack([flat[:-lag], flat[lag:]]))[0, 1].item()) < 5e-3


@needs_extension
def test_philox_masks_do_not_depend_on_the_thread_count():
    threads = torch.get_num_threads()
    masks = []
    try:
        for count in (1, 2):
            torch.set_num_threads(count)
            with ops.use_mask_generator("philox"):
                torch.manual_seed(9)
                masks.append(ops.draw_keep_mask((3001, 7), 0.25, "cpu"))
    finally:
        torch.set_num_threads(threads)
    assert torch.equal(masks[0], masks[1])


@needs_extension
@pytest.mark.parametrize("p", [0.0, 1.0])
def test_philox_edge_probabilities_keep_all_or_nothing(p):
    with ops.use_mask_generator("philox"):
        keep = ops.draw_keep_mask((4097,), p, "cpu")
    assert keep.sum().item() == (4097 if p == 1.0 else 0)


@needs_extension
@pytest.mark.parametrize("operator", [GATConv, GATv2Conv])
def test_fused_and_reference_paths_drop_the_same_coefficients_with_philox(operator):
    layer = operator(5, 3, heads=2, dropout=0.5).double().train()
    x = torch.randn(20, 5, dtype=torch.float64)
    edge_index = torch.randint(0, 20, (2, 70))
    outs = []
    with ops.use_mask_generator("philox"):
        for backend in ("fused", "reference"):
            with ops.use_backend(backend):
                torch.manual_seed(5)
                outs.append(layer(x, edge_index))
    torch.testing.assert_close(outs[0], outs[1], rtol=1e-10, atol=1e-12)


@needs_extension
def test_lean_dropout_with_philox_keeps_the_distribution_and_its_recipe():
    z = torch.randn(400, 50)
    with ops.use_mask_generator("philox"):
        y = lean_dropout(z, 0.6, True)
    kept = y != 0
    assert abs(kept.double().mean().item() - 0.4) < 0.02
    torch.testing.assert_close(y[kept], z[kept] / 0.4)


def test_unknown_generator_is_refused_with_the_choices():
    with pytest.raises(ValueError, match="philox"):
        ops.set_mask_generator("mt19937")


def test_philox_is_the_default_generator_of_a_fresh_process():
    env = {k: v for k, v in os.environ.items() if k != "GATKIT_MASKS"}
    code = "from gatkit import ops; print(ops.get_mask_generator())"
    printed = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    ).stdout
    assert printed.strip() == "philox"
    env["GATKIT_MASKS"] = "torch"
    printed = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    ).stdout
    assert printed.strip() == "torch"


def philox4x32_10(counter: list[int], key: list[int]) -> list[int]:
    """Philox4x32-10 (Salmon et al., SC 2011), written from the definition, in Python."""
    m0, m1, w0, w1 = 0xD2511F53, 0xCD9E8D57, 0x9E3779B9, 0xBB67AE85
    c, k = list(counter), list(key)
    for round_ in range(10):
        p0, p1 = m0 * c[0], m1 * c[2]
        c = [(p1 >> 32) ^ c[1] ^ k[0], p1 & 0xFFFFFFFF, (p0 >> 32) ^ c[3] ^ k[1], p0 & 0xFFFFFFFF]
        if round_ < 9:
            k = [(k[0] + w0) & 0xFFFFFFFF, (k[1] + w1) & 0xFFFFFFFF]
    return c


def test_python_philox_gives_the_published_known_answers():
    # Random123's known-answer vectors (kat_vectors): counter, key -> output.
    assert philox4x32_10([0, 0, 0, 0], [0, 0]) == [0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8]
    ones = 0xFFFFFFFF
    assert philox4x32_10([ones] * 4, [ones] * 2) == [0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD]


@needs_extension
@pytest.mark.parametrize("n", [1, 63, 64, 1000, 4099])  # whole 16-block groups and tails
@pytest.mark.parametrize("keep_prob", [0.0, 0.4, 1.0])
def test_philox_mask_is_word_i_of_block_b_below_the_threshold(n, keep_prob):
    seed = 0x1234_5678_9ABC_DEF0 % (2**63)
    keep = torch.empty(n, dtype=torch.uint8)
    cpp_kernels().bernoulli_mask(keep, keep_prob, seed)
    threshold = min(round(keep_prob * 2**32), 2**32)
    key = [seed & 0xFFFFFFFF, seed >> 32]
    expected = []
    for b in range((n + 3) // 4):
        words = philox4x32_10([b & 0xFFFFFFFF, b >> 32, 0, 0], key)
        expected += [int(w < threshold) for w in words]
    assert keep.tolist() == expected[:n]
