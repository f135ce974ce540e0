"""``head_scores``: a^k·(W h)_n per head, one matrix product forward and backward."""

from __future__ import annotations

import pytest
import torch

from gatkit.ops.head_scores import head_scores


def _inputs(num_nodes=7, heads=3, channels=4, vectors=2, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    projected = torch.randn(num_nodes, heads, channels, generator=g, dtype=dtype)
    atts = [torch.randn(heads, channels, generator=g, dtype=dtype) for _ in range(vectors)]
    return projected, atts


@pytest.mark.parametrize("vectors", [1, 2, 3])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_head_scores_are_the_per_head_dot_products(vectors, dtype):
    projected, atts = _inputs(vectors=vectors, dtype=dtype)
    scores = head_scores(projected, *atts)
    assert len(scores) == vectors
    tolerance = 1e-6 if dtype == torch.float32 else 1e-13
    for score, att in zip(scores, atts, strict=True):
        want = (projected * att).sum(-1)  # [N, H], the formula
        assert score.shape == want.shape
        torch.testing.assert_close(score, want, rtol=tolerance, atol=tolerance)


@pytest.mark.parametrize("vectors", [1, 2])
def test_head_scores_pass_gradcheck(vectors):
    projected, atts = _inputs(num_nodes=5, heads=2, channels=3, vectors=vectors)
    inputs = [projected.requires_grad_(True)] + [a.requires_grad_(True) for a in atts]

    def scores(p, *a):
        return head_scores(p, *a)

    assert torch.autograd.gradcheck(scores, inputs)


def test_head_scores_gradients_match_the_product_and_sum():
    projected, atts = _inputs()
    weights = [torch.randn(projected.shape[:2], dtype=projected.dtype) for _ in atts]

    def gradients(use_op: bool):
        p = projected.clone().requires_grad_(True)
        a = [t.clone().requires_grad_(True) for t in atts]
        scores = head_scores(p, *a) if use_op else [(p * t).sum(-1) for t in a]
        loss = sum((s * w).sum() for s, w in zip(scores, weights, strict=True))
        return torch.autograd.grad(loss, [p, *a])

    for got, want in zip(gradients(True), gradients(False), strict=True):
        torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)


def test_head_scores_save_the_projection_itself_and_nothing_else_of_its_size():
    projected, atts = _inputs(num_nodes=50)
    projected.requires_grad_(True)
    saved = []

    def pack(tensor):
        saved.append(tensor)
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        head_scores(projected, *atts)
    large = [t for t in saved if t.numel() >= projected.numel()]
    assert len(large) == 1 and large[0].data_ptr() == projected.data_ptr()
    assert large[0].shape == projected.shape  # the layer's recipe key: same storage and shape


def test_head_scores_accept_a_strided_projection():
    projected, atts = _inputs()
    strided = projected.transpose(0, 1).contiguous().transpose(0, 1)  # same values, new strides
    assert not strided.is_contiguous()
    for got, want in zip(head_scores(strided, *atts), head_scores(projected, *atts), strict=True):
        torch.testing.assert_close(got, want, rtol=1e-13, atol=1e-13)


def test_head_scores_refuse_mismatched_shapes_and_no_vectors():
    projected, atts = _inputs()
    with pytest.raises(ValueError, match=r"\[N, H, C\]"):
        head_scores(projected, atts[0][:, :2])
    with pytest.raises(ValueError, match=r"\[N, H, C\]"):
        head_scores(projected[0], atts[0])
    with pytest.raises(ValueError, match="at least one"):
        head_scores(projected)
