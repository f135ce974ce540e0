"""The fused CPU kernels (C++ and chunked PyTorch) agree with the reference primitives.

Forward, attention and every gradient of GATConv and GATv2Conv, on the adversarial graphs
of the layer tests (isolated nodes, duplicate edges, self-loops, bipartite, edge features),
with 1 and 8 heads; 1e-5 relative in float32 and 1e-10 in float64. Also: gradcheck of the
fused operators, attention dropout, and that nothing of size E * H * C is saved.
"""

from __future__ import annotations

import pytest
import torch

from fused_cases import (
    FUSED_BACKENDS,
    TOLERANCE,
    check_backend_matches_reference,
    make_case,
    needs_cpp,
    run_layer,
    small_operator_inputs,
)
from gatkit import ops
from gatkit.nn import GATConv, GATv2Conv
from gatkit.ops import fused_chunked
from graph_cases import assert_relative


@pytest.mark.parametrize("backend", FUSED_BACKENDS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("operator", [GATConv, GATv2Conv])
@pytest.mark.parametrize("heads", [1, 8])
@pytest.mark.parametrize("bipartite", [False, True])
@pytest.mark.parametrize("edge_dim", [None, 3])
@pytest.mark.parametrize("channels", [4, 8])  # 8: the C++ kernels' fixed-width loops
def test_fused_layer_matches_reference_forward_attention_and_gradients(
    backend, dtype, operator, heads, bipartite, edge_dim, channels
):
    case = make_case(bipartite, edge_dim, dtype)
    in_channels = (5, 3) if bipartite else 5
    torch.manual_seed(0)
    layer = operator(in_channels, channels, heads=heads, edge_dim=edge_dim).to(dtype)
    check_backend_matches_reference(layer, case, backend, dtype)


@pytest.mark.parametrize("backend", FUSED_BACKENDS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("operator", [GATConv, GATv2Conv])
@pytest.mark.parametrize("channels", [3, 16])
def test_fused_forward_matches_reference_when_logits_span_hundreds(
    backend, dtype, operator, channels
):
    # Logits hundreds apart: most exponentials underflow to 0 (in float32 the C++ kernels'
    # own exp), each segment's softmax is nearly one-hot. Output and attention only: the
    # gradients of such logits are sums that cancel to far below float32 (or float64)
    # rounding of their terms, for every implementation, the reference included.
    case = make_case(False, 2, dtype)
    torch.manual_seed(0)
    layer = operator(5, channels, heads=8, edge_dim=2).to(dtype).eval()
    with torch.no_grad():
        for name, parameter in layer.named_parameters():
            if name.startswith("att"):
                parameter.mul_(300.0)
    want_out, want_used, want_alpha, _ = run_layer(layer, case, "reference")
    out, used, alpha, _ = run_layer(layer, case, backend)
    assert torch.equal(used, want_used)
    assert want_alpha.max() > 0.999 and (want_alpha < 1e-38).any()  # one-hot rows, underflows
    tolerance = TOLERANCE[dtype]
    assert_relative(out, want_out, tolerance, f"{backend} output")
    assert_relative(alpha, want_alpha, tolerance, f"{backend} attention")


@pytest.mark.parametrize("backend", FUSED_BACKENDS)
@pytest.mark.parametrize("operator", [GATConv, GATv2Conv])
def test_fused_attention_dropout_drops_the_same_coefficients_as_reference(backend, operator):
    case = make_case(False, 2, torch.float64)
    torch.manual_seed(0)
    layer = operator(5, 4, heads=3, edge_dim=2, dropout=0.5).double().train()
    check_backend_matches_reference(layer, case, backend, torch.float64)


@pytest.mark.parametrize("backend", FUSED_BACKENDS)
@pytest.mark.parametrize("operator", [GATConv, GATv2Conv])
@pytest.mark.parametrize("bipartite", [False, True])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("feature_dropout", [0.0, 0.5])  # 0: GATv2's W_s, W_t as one pair
def test_fused_layer_with_head_and_message_dropout_matches_reference(
    backend, operator, bipartite, dtype, feature_dropout
):
    case = make_case(bipartite, 2, dtype)
    torch.manual_seed(0)
    layer = operator(
        (5, 3) if bipartite else 5,
        4,
        heads=3,
        edge_dim=2,
        dropout=0.3,
        feature_dropout=feature_dropout,
        message_dropout=0.5,
    ).to(dtype)
    check_backend_matches_reference(layer.train(), case, backend, dtype)


@pytest.mark.parametrize("backend", FUSED_BACKENDS)
@pytest.mark.parametrize("operator", [GATConv, GATv2Conv])
def test_fused_layer_without_self_loops_keeps_isolated_nodes_at_bias(backend, operator):
    case = make_case(False, None, torch.float64)
    torch.manual_seed(0)
    layer = operator(5, 4, heads=2, add_self_loops=False, concat=False).double()
    check_backend_matches_reference(layer, case, backend, torch.float64)


@pytest.mark.parametrize("backend", FUSED_BACKENDS)
def test_fused_gat_operator_passes_gradcheck(backend):
    edge_index, num_src, num_dst, E, H, C, _, rand = small_operator_inputs()
    csr = ops.build_csr(edge_index, num_src, num_dst)
    scale = ops.attention_dropout(E, H, 0.3, True, torch.device("cpu"))
    with ops.use_backend(backend):
        kernels = ops.kernels_for(torch.device("cpu"), torch.float64)

    def f(ss, sd, es, wh):
        return ops.gat_attention(kernels, csr, ss, sd, es, wh, 0.2, scale)

    args = (rand(num_src, H), rand(num_dst, H), rand(E, H), rand(num_src, H, C))
    assert torch.autograd.gradcheck(f, args)


@pytest.mark.parametrize("backend", FUSED_BACKENDS)
def test_fused_gatv2_operator_passes_gradcheck(backend):
    edge_index, num_src, num_dst, E, H, C, D, rand = small_operator_inputs()
    csr = ops.build_csr(edge_index, num_src, num_dst)
    with ops.use_backend(backend):
        kernels = ops.kernels_for(torch.device("cpu"), torch.float64)

    def f(xs, xt, att, edge_attr, edge_weight):
        return ops.gatv2_attention(kernels, csr, xs, xt, att, edge_attr, edge_weight, 0.2)

    args = (
        rand(num_src, H, C),
        rand(num_dst, H, C),
        rand(H, C),
        rand(E, D),
        rand(H * C, D),
    )
    assert torch.autograd.gradcheck(f, args)


@pytest.mark.parametrize("backend", FUSED_BACKENDS)
def test_fused_gatv2_operator_with_separate_messages_passes_gradcheck(backend):
    edge_index, num_src, num_dst, E, H, C, _, rand = small_operator_inputs()
    csr = ops.build_csr(edge_index, num_src, num_dst)
    scale = ops.attention_dropout(E, H, 0.3, True, torch.device("cpu"))
    with ops.use_backend(backend):
        kernels = ops.kernels_for(torch.device("cpu"), torch.float64)

    def f(xs, xt, att, values):
        return ops.gatv2_attention(kernels, csr, xs, xt, att, None, None, 0.2, scale, values)

    args = (rand(num_src, H, C), rand(num_dst, H, C), rand(H, C), rand(num_src, H, C))
    assert torch.autograd.gradcheck(f, args)


def saved_sizes(layer, x, edge_index, edge_attr, backend) -> list[int]:
    """Number of elements of every tensor autograd saves during one forward."""
    sizes: list[int] = []

    def pack(t):
        sizes.append(t.numel())
        return t

    with ops.use_backend(backend), torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        layer(x, edge_index, edge_attr=edge_attr)
    return sizes


@pytest.mark.parametrize("backend", FUSED_BACKENDS)
@pytest.mark.parametrize("operator", [GATConv, GATv2Conv])
def test_fused_layer_saves_nothing_of_size_edges_times_heads_times_channels(backend, operator):
    num_nodes, num_edges, heads, channels, edge_dim = 50, 2000, 4, 8, 2
    g = torch.Generator().manual_seed(0)
    x = torch.randn(num_nodes, 3, generator=g, requires_grad=True)
    edge_index = torch.randint(0, num_nodes, (2, num_edges), generator=g)
    edge_attr = torch.randn(num_edges, edge_dim, generator=g, requires_grad=True)
    layer = operator(3, channels, heads=heads, edge_dim=edge_dim, dropout=0.2).train()
    _, (used, _) = layer(x, edge_index, edge_attr=edge_attr, return_attention_weights=True)
    ehc = used.size(1) * heads * channels  # E' (after self-loop handling) * H * C
    fused = saved_sizes(layer, x, edge_index, edge_attr, backend)
    assert max(fused) <= used.size(1) * heads, f"fused path saved {max(fused)} > E' * H"
    reference = saved_sizes(layer, x, edge_index, edge_attr, "reference")
    assert max(reference) >= ehc, "the check would not see an [E, H, C] tensor"


def test_csr_is_cached_per_edge_index_and_invalidated_by_in_place_writes():
    edge_index = torch.tensor([[0, 1, 2, 2], [1, 2, 0, 1]])
    first = ops.csr_of(edge_index, 3, 3)
    assert ops.csr_of(edge_index, 3, 3) is first
    edge_index[0, 0] = 2
    second = ops.csr_of(edge_index, 3, 3)
    assert second is not first
    assert second.col.tolist() == [2, 2, 2, 1]


def test_csr_segments_list_every_edge_once_in_user_order_within_a_destination():
    edge_index = torch.tensor([[3, 0, 1, 0, 2, 3], [1, 1, 0, 2, 1, 2]])
    csr = ops.build_csr(edge_index, 4, 4)
    assert csr.rowptr.tolist() == [0, 1, 4, 6, 6]
    assert csr.perm.tolist() == [2, 0, 1, 4, 3, 5]
    assert csr.colptr.tolist() == [0, 2, 3, 4, 6]
    assert sorted(csr.cperm.tolist()) == list(range(6))


def test_edge_list_forms_the_sorted_edges_again_in_their_own_order():
    # duplicates, a self-loop, an isolated destination (3) and a bipartite shape
    edge_index = torch.tensor([[3, 0, 1, 0, 2, 3, 1, 1], [1, 1, 0, 2, 1, 2, 1, 1]])
    assert torch.equal(ops.edge_list(ops.build_csr(edge_index, 4, 4)), edge_index)
    assert torch.equal(ops.edge_list(ops.build_csr(edge_index, 4, 3)), edge_index)
    empty = torch.empty(2, 0, dtype=torch.long)
    assert torch.equal(ops.edge_list(ops.build_csr(empty, 2, 2)), empty)


@pytest.mark.parametrize("operator", [GATConv, GATv2Conv])
def test_fused_layer_returns_the_edges_with_self_loops_it_attended_over(operator):
    edge_index = torch.tensor([[0, 1, 2, 2, 3], [1, 2, 0, 2, 1]])
    layer = operator(3, 2, heads=2).eval()
    x = torch.randn(5, 3)
    with ops.use_backend("reference"):
        _, (expected, alpha_ref) = layer(x, edge_index, return_attention_weights=True)
    _, (edges, alpha) = layer(x, edge_index, return_attention_weights=True)
    assert torch.equal(edges, expected)
    torch.testing.assert_close(alpha, alpha_ref)


def test_chunked_kernels_agree_across_chunk_boundaries(monkeypatch):
    monkeypatch.setattr(fused_chunked, "CHUNK_EDGES", 7)
    case = make_case(False, 3, torch.float64)
    torch.manual_seed(0)
    layer = GATv2Conv(5, 4, heads=2, edge_dim=3).double()
    check_backend_matches_reference(layer, case, "chunked", torch.float64)


def test_unknown_backend_is_refused_with_the_choices():
    with pytest.raises(ValueError, match=r"backend must be one of .*'bogus'"):
        ops.set_backend("bogus")


def test_csc_positions_point_at_the_same_edges_in_csr_order():
    edge_index = torch.tensor([[3, 0, 1, 0, 2, 3, 1], [1, 1, 0, 2, 1, 2, 1]])
    csr = ops.build_csr(edge_index, 4, 3)
    assert torch.equal(csr.perm[csr.cpos], csr.cperm)


def test_attention_dropout_mask_is_the_one_f_dropout_draws():
    torch.manual_seed(7)
    drop = ops.attention_dropout(1000, 8, 0.3, True, torch.device("cpu"))
    torch.manual_seed(7)
    want = torch.nn.functional.dropout(torch.ones(1000, 8), 0.3, training=True)
    assert drop.mask.dtype == torch.uint8
    assert torch.equal(drop.scale(torch.float32), want)
    assert ops.attention_dropout(1000, 8, 0.3, False, torch.device("cpu")) is None
    assert ops.attention_dropout(1000, 8, 0.0, True, torch.device("cpu")) is None


@needs_cpp
def test_cpp_gatv2_gradients_are_the_same_in_every_run():
    g = torch.Generator().manual_seed(0)
    num_nodes = 3000
    x = torch.randn(num_nodes, 16, generator=g)
    edge_index = torch.randint(0, num_nodes, (2, 30000), generator=g)
    torch.manual_seed(0)
    layer = GATv2Conv(16, 8, heads=4).train()
    grads = []
    threads = torch.get_num_threads()
    torch.set_num_threads(max(2, threads))  # several threads share the destination blocks
    try:
        for _ in range(3):
            layer.zero_grad()
            with ops.use_backend("cpp"):
                layer(x, edge_index).square().sum().backward()
            grads.append([p.grad.clone() for p in layer.parameters()])
    finally:
        torch.set_num_threads(threads)
    for later in grads[1:]:
        for first, again in zip(grads[0], later, strict=True):
            assert torch.equal(first, again)


def test_cpp_build_falls_back_to_generic_flags_when_the_cpu_flags_fail(monkeypatch):
    import torch.utils.cpp_extension as cpp_extension

    from gatkit.ops import fused_cpu

    calls = []

    def fake_load(name, sources, extra_cflags, extra_ldflags, verbose):
        calls.append((name, extra_cflags))
        if "-march=native" in extra_cflags:
            raise RuntimeError("unrecognised option -mprefer-vector-width=256")
        return "module"

    monkeypatch.setattr(cpp_extension, "load", fake_load)
    monkeypatch.setattr(fused_cpu, "_cpu_tag", lambda: "abc")
    assert fused_cpu._build() == "module"
    assert [name for name, _ in calls] == [
        "gatkit_fused_attention_abc",
        "gatkit_fused_attention_generic",
    ]
    assert "-march=native" not in calls[-1][1]
