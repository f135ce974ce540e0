"""Per-head input dropout and message dropout (the GAT authors' placement of dropout)."""

from __future__ import annotations

import pytest
import torch

from gatkit.nn import GATConv, GATv2Conv, dropout
from gatkit.nn.dropout import HeadwiseProjection

HEADS, P = 4, 0.5


def sparse_input(rows=60, cols=30, seed=0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(rows, cols, generator=g, dtype=torch.float64)
    return x * (torch.rand(rows, cols, generator=g) < 0.1)  # about 10 % non-zero


def dense_input(rows=60, cols=30, seed=0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(rows, cols, generator=g, dtype=torch.float64) + 0.1


def identity_heads(features: int) -> torch.nn.Linear:
    """A map whose head k returns its (dropped) input: weight = K stacked identities."""
    linear = torch.nn.Linear(features, HEADS * features, bias=False).double()
    with torch.no_grad():
        linear.weight.copy_(torch.eye(features, dtype=torch.float64).repeat(HEADS, 1))
    return linear


@pytest.mark.parametrize("make_input", [sparse_input, dense_input], ids=["sparse", "dense"])
@pytest.mark.parametrize("input_grad", [False, True], ids=["fixed-x", "x-needs-grad"])
@pytest.mark.parametrize("lean", [False, True], ids=["copies", "head-by-head"])
def test_each_head_sees_its_own_mask_shared_by_all_maps(make_input, input_grad, lean, monkeypatch):
    # Sparse input without a gradient takes the CSR path; the others the dense one, which
    # drops head by head (masks redrawn in backward) above a size limit, here forced to 0.
    if lean:
        monkeypatch.setattr(dropout, "_DENSE_COPIES_LIMIT", 0)
    x = make_input().requires_grad_(input_grad)
    features = x.size(1)
    mirror = identity_heads(features)
    other = torch.nn.Linear(features, HEADS * 3, bias=True).double()
    torch.manual_seed(0)
    seen, projected = HeadwiseProjection(HEADS, P).train()(x, [mirror, other])

    # Head k of the identity map is x ⊙ m_k / (1 - p): every entry 0 or x / (1 - p).
    scaled = x.detach().unsqueeze(1).expand_as(seen) / (1 - P)
    kept = seen.detach() != 0
    assert torch.equal(seen.detach()[kept], scaled[kept])
    assert not bool(kept[x.detach().unsqueeze(1).expand_as(seen) == 0].any())
    fraction = kept.sum() / (x.detach() != 0).sum() / HEADS
    assert 0.4 < fraction.item() < 0.6
    assert not torch.equal(kept[:, 0], kept[:, 1]), "heads must draw different masks"

    # The second map sees the same masks: W_k (x ⊙ m_k) / (1 - p) + b_k.
    weight = other.weight.view(HEADS, 3, features)
    masked = x.unsqueeze(1) * kept / (1 - P)  # [N, K, F]
    expected = torch.einsum("nkf,kcf->nkc", masked, weight) + other.bias.view(HEADS, 3)
    torch.testing.assert_close(projected, expected, rtol=1e-12, atol=1e-12)

    # Gradients are those of the dense formula (for x: where x is non-zero, the only
    # entries whose masks the identity map reveals).
    probe = torch.randn(projected.shape, generator=torch.Generator().manual_seed(1)).double()
    wrt = [other.weight, other.bias] + ([x] if input_grad else [])
    got = torch.autograd.grad((projected * probe).sum(), wrt)
    want = torch.autograd.grad((expected * probe).sum(), wrt)
    nonzero = x.detach() != 0
    for name, g, w in zip(["weight", "bias", "x"], got, want, strict=False):
        if name == "x":
            g, w = g[nonzero], w[nonzero]
        torch.testing.assert_close(g, w, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("make_input", [sparse_input, dense_input], ids=["sparse", "dense"])
def test_headwise_projection_is_the_plain_projection_without_dropout(make_input):
    x = make_input()
    linear = torch.nn.Linear(x.size(1), HEADS * 3).double()
    want = linear(x).view(-1, HEADS, 3)
    (evaluated,) = HeadwiseProjection(HEADS, P).eval()(x, [linear])
    (p_zero,) = HeadwiseProjection(HEADS, 0.0).train()(x, [linear])
    assert torch.equal(evaluated, want)
    assert torch.equal(p_zero, want)


@pytest.mark.parametrize("operator", [GATConv, GATv2Conv])
def test_message_dropout_leaves_the_attention_scores_undropped(operator):
    torch.manual_seed(0)
    x = dense_input(20, 6)
    edge_index = torch.randint(0, 20, (2, 80), generator=torch.Generator().manual_seed(2))
    layer = operator(6, 5, heads=3, message_dropout=0.5).double()
    eval_out, (_, eval_alpha) = layer.eval()(x, edge_index, return_attention_weights=True)
    train_out, (_, train_alpha) = layer.train()(x, edge_index, return_attention_weights=True)
    torch.testing.assert_close(train_alpha, eval_alpha, rtol=1e-12, atol=1e-12)
    assert not torch.allclose(train_out, eval_out), "messages were not dropped"


@pytest.mark.parametrize("name", ["feature_dropout", "message_dropout"])
def test_dropout_probabilities_outside_zero_one_are_refused(name):
    with pytest.raises(ValueError, match=name):
        GATConv(4, 2, **{name: 1.0})
