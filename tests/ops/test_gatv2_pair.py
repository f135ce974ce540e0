"""GATv2's projections as one ``[N, 2, H, C]`` pair (one matrix product with W_s and W_t).

The C++ kernels read ``pair[:, 0]`` and ``pair[:, 1]`` in place (row stride 2 H C) and write
both gradients into one ``[N, 2, H, C]`` tensor; other kernel sets get contiguous copies. The
pair must give what the two separate tensors give, bit for bit, and pass gradcheck.
"""

from __future__ import annotations

import pytest
import torch

from fused_cases import FUSED_BACKENDS, needs_cpp, small_operator_inputs
from gatkit import ops
from gatkit.ops.fused_cpu import cpp_kernels


def square_inputs(seed: int = 0):
    """A square graph (isolated node, duplicate edge, self-loop) and float64 inputs."""
    g = torch.Generator().manual_seed(seed)
    N, H, C, D = 6, 2, 3, 2
    src = torch.tensor([0, 1, 1, 2, 3, 5, 5, 4, 0, 2, 4])
    dst = torch.tensor([0, 0, 0, 1, 1, 2, 2, 2, 4, 4, 4])  # 3, 5: no in-edge; (1, 0) twice
    edge_index = torch.stack([src, dst])

    def rand(*shape):
        return torch.randn(*shape, generator=g, dtype=torch.float64, requires_grad=True)

    return edge_index, N, H, C, D, rand


def kernels_of(backend: str):
    with ops.use_backend(backend):
        return ops.kernels_for(torch.device("cpu"), torch.float64)


@pytest.mark.parametrize("backend", FUSED_BACKENDS)
@pytest.mark.parametrize("dropout", [0.0, 0.4])
@pytest.mark.parametrize("edge_features", [False, True])
@pytest.mark.parametrize("separate_values", [False, True])
def test_pair_gives_the_results_of_separate_projections_bit_for_bit(
    backend, dropout, edge_features, separate_values
):
    edge_index, N, H, C, D, rand = square_inputs()
    E = edge_index.size(1)
    csr = ops.build_csr(edge_index, N, N)
    kernels = kernels_of(backend)
    pair = rand(N, 2, H, C)
    att = rand(H, C)
    edge_attr, edge_weight = (rand(E, D), rand(H * C, D)) if edge_features else (None, None)
    values = rand(N, H, C) if separate_values else None
    drop = ops.attention_dropout(E, H, dropout, True, torch.device("cpu")) if dropout else None
    g_out, g_alpha = torch.randn(N, H, C, dtype=torch.float64), torch.randn(E, H).double()

    def run(**inputs):
        out, alpha = ops.gatv2_attention(
            kernels, csr, att=att, edge_attr=edge_attr, edge_weight=edge_weight,
            negative_slope=0.2, dropout=drop, values=values, **inputs,
        )  # fmt: skip
        leaves = [t for t in (att, edge_attr, edge_weight, values) if t is not None]
        wrt = [t for t in inputs.values() if t is not None] + leaves
        grads = torch.autograd.grad((out * g_out).sum() + (alpha * g_alpha).sum(), wrt)
        return out, alpha, grads

    out_p, alpha_p, (g_pair, *rest_p) = run(pair=pair, x_src=None, x_dst=None)
    xs, xt = pair[:, 0].detach().clone(), pair[:, 1].detach().clone()
    xs.requires_grad_(), xt.requires_grad_()
    out_s, alpha_s, (g_xs, g_xt, *rest_s) = run(x_src=xs, x_dst=xt)
    assert g_pair.shape == pair.shape
    assert torch.equal(out_p, out_s) and torch.equal(alpha_p, alpha_s)
    assert torch.equal(g_pair[:, 0], g_xs) and torch.equal(g_pair[:, 1], g_xt)
    for a, b in zip(rest_p, rest_s, strict=True):
        assert torch.equal(a, b)


@pytest.mark.parametrize("backend", FUSED_BACKENDS)
def test_pair_operator_passes_gradcheck(backend):
    edge_index, N, H, C, D, rand = square_inputs(1)
    E = edge_index.size(1)
    csr = ops.build_csr(edge_index, N, N)
    kernels = kernels_of(backend)
    drop = ops.attention_dropout(E, H, 0.3, True, torch.device("cpu"))

    def f(pair, att, edge_attr, edge_weight):
        out, alpha = ops.gatv2_attention(
            kernels, csr, None, None, att, edge_attr, edge_weight, 0.2, drop, pair=pair
        )
        return out, alpha

    args = (rand(N, 2, H, C), rand(H, C), rand(E, D), rand(H * C, D))
    assert torch.autograd.gradcheck(f, args)


def test_pair_that_is_not_contiguous_is_read_correctly():
    edge_index, N, H, C, _, rand = square_inputs(2)
    csr = ops.build_csr(edge_index, N, N)
    base = rand(N, H, 2, C)  # W_s h, W_t h interleaved per head: a pair view with odd strides
    pair = base.transpose(1, 2)  # [N, 2, H, C], not contiguous
    att = rand(H, C)
    for backend in ("chunked", "cpp") if cpp_kernels() is not None else ("chunked",):
        kernels = kernels_of(backend)
        out, _ = ops.gatv2_attention(kernels, csr, None, None, att, None, None, 0.2, pair=pair)
        ref, _ = ops.gatv2_attention(
            kernels_of("chunked"), csr, pair[:, 0].contiguous(), pair[:, 1].contiguous(), att,
            None, None, 0.2,
        )  # fmt: skip
        torch.testing.assert_close(out, ref, rtol=1e-12, atol=1e-12)


def test_pair_and_separate_inputs_together_are_refused():
    edge_index, N, H, C, _, rand = square_inputs()
    csr = ops.build_csr(edge_index, N, N)
    kernels = kernels_of("chunked")
    pair, att = rand(N, 2, H, C), rand(H, C)
    with pytest.raises(ValueError, match="x_src and x_dst, or pair alone"):
        ops.gatv2_attention(kernels, csr, pair[:, 0], None, att, None, None, 0.2, pair=pair)
    with pytest.raises(ValueError, match="x_src and x_dst, or pair alone"):
        ops.gatv2_attention(kernels, csr, None, None, att, None, None, 0.2)
    with pytest.raises(ValueError, match=r"pair must be \[N, 2, H, C\]"):
        ops.gatv2_attention(kernels, csr, None, None, att, None, None, 0.2, pair=rand(N, 3, H, C))


@needs_cpp
def test_cpp_kernels_refuse_rows_with_the_wrong_stride():
    edge_index, num_src, num_dst, _, H, C, _, _ = small_operator_inputs()
    csr = ops.build_csr(edge_index, num_src, num_dst)
    module = cpp_kernels()
    xs = torch.randn(num_src, 2, H, C)[:, 0]  # a half of a pair, passed as a plain tensor
    xt = torch.randn(num_dst, H, C)
    att = torch.randn(H, C)
    with pytest.raises(RuntimeError, match="must be contiguous"):
        module.gatv2_forward(*csr.astuple()[:3], xs, xt, None, att, 0.2, None, 1.0, None,
                             False, False)  # fmt: skip
    with pytest.raises(RuntimeError, match="one row count"):
        module.gatv2_forward(*csr.astuple()[:3], xs, xt, None, att, 0.2, None, 1.0, None,
                             False, True)  # fmt: skip
