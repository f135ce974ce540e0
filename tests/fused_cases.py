"""Shared cases of the fused-kernel tests: adversarial graphs, layer runs, comparisons."""

from __future__ import annotations

import copy
import dataclasses

import pytest
import torch

from gatkit import ops
from gatkit.ops.fused_cpu import cpp_kernels
from graph_cases import GraphCase, assert_relative, max_relative_error, random_graph_case

TOLERANCE = {torch.float32: 1e-5, torch.float64: 1e-10}

needs_cpp = pytest.mark.skipif(
    cpp_kernels() is None, reason="the C++ extension could not be built here"
)
FUSED_BACKENDS = ["chunked", pytest.param("cpp", marks=needs_cpp)]  # the CPU kernel sets


def make_case(bipartite: bool, edge_dim: int | None, dtype: torch.dtype, seed: int = 3):
    if bipartite:
        return random_graph_case(
            seed, num_src=13, num_dst=9, in_src=5, in_dst=3, edge_dim=edge_dim, dtype=dtype
        )
    return random_graph_case(seed, num_src=14, edge_dim=edge_dim, dtype=dtype)


def run_layer(layer, case, backend: str, seed: int = 0, with_attention: bool = True):
    """Output, (edge_index, alpha) and the gradients of inputs and parameters.

    Without ``with_attention`` the layer is not asked for its coefficients (the fused
    kernels then never form them in the forward pass); ``used`` and ``alpha`` are ``None``
    and the loss reads the output only.
    """
    inputs = [case.x_src] + ([case.x_dst] if case.bipartite else [])
    if case.edge_attr is not None:
        inputs.append(case.edge_attr)
    inputs = [t.detach().clone().requires_grad_(True) for t in inputs]
    x = (inputs[0], inputs[1]) if case.bipartite else inputs[0]
    edge_attr = inputs[-1] if case.edge_attr is not None else None
    torch.manual_seed(seed)  # the same dropout mask on both paths
    with ops.use_backend(backend):
        if with_attention:
            out, (used, alpha) = layer(
                x, case.edge_index, edge_attr=edge_attr, return_attention_weights=True
            )
        else:
            out, used, alpha = layer(x, case.edge_index, edge_attr=edge_attr), None, None
    draws = torch.Generator().manual_seed(1)  # the same draws in every dtype
    weights = torch.randn(out.shape, generator=draws, dtype=torch.float64).to(out.dtype)
    loss = (out * weights).sum()
    if alpha is not None:
        alpha_weights = torch.randn(
            alpha.shape, generator=torch.Generator().manual_seed(2), dtype=torch.float64
        ).to(out.dtype)
        loss = loss + (alpha * alpha_weights).sum()
    grads = torch.autograd.grad(loss, inputs + list(layer.parameters()))
    names = ["x_src", "x_dst"][: 1 + case.bipartite] + ["edge_attr"] * (edge_attr is not None)
    names += [name for name, _ in layer.named_parameters()]
    return out, used, alpha, dict(zip(names, grads, strict=True))


def in_float64(case: GraphCase) -> GraphCase:
    """The same graph with float64 features."""
    edge_attr = None if case.edge_attr is None else case.edge_attr.double()
    return dataclasses.replace(
        case, x_src=case.x_src.double(), x_dst=case.x_dst.double(), edge_attr=edge_attr
    )


def assert_agrees(actual, expected, exact, tolerance: float, what: str) -> None:
    """``actual`` within ``tolerance`` of the float32 reference, or of the float64 result.

    Relative error is ``max|a - b| / max|b|``. Some float32 gradients are sums that cancel
    (GAT's target-side attention vector: over a segment whose scores share a LeakyReLU branch
    the softmax gradient sums to zero exactly, so what is left is mostly rounding): there the
    float32 reference is itself more than ``tolerance`` away from the float64 result. Then
    the backend passes if it is within ``tolerance`` plus twice the reference's own error of
    the float64 result (``exact``, the reference path with the same weights and inputs in
    float64), i.e. no less accurate than the reference allows for.
    """
    if exact is None or max_relative_error(actual, expected) <= tolerance:
        assert_relative(actual, expected, tolerance, what)
        return
    exact = exact.to(actual.dtype)
    allowed = tolerance + 2 * max_relative_error(expected, exact)
    assert_relative(actual, exact, allowed, f"{what} (against float64)")


def check_backend_matches_reference(layer, case, backend, dtype):
    tol = TOLERANCE[dtype]
    exact = exact_free = None
    if dtype == torch.float32:  # the float64 results of the same weights and inputs
        layer64, case64 = copy.deepcopy(layer).double(), in_float64(case)
        exact = run_layer(layer64, case64, "reference")
        exact_free = run_layer(layer64, case64, "reference", with_attention=False)
    want_out, want_used, want_alpha, want_grads = run_layer(layer, case, "reference")
    out, used, alpha, grads = run_layer(layer, case, backend)
    assert torch.equal(used, want_used), "edge order of the returned edge_index changed"

    def part(results, k, name=None):
        if results is None:
            return None
        return results[k] if name is None else results[k][name]

    assert_agrees(out, want_out, part(exact, 0), tol, f"{backend} output")
    assert_agrees(alpha, want_alpha, part(exact, 2), tol, f"{backend} attention")
    for name, want in want_grads.items():
        assert_agrees(grads[name], want, part(exact, 3, name), tol, f"{backend} gradient of {name}")
    # Not asked for alpha, the kernels skip it: the output and gradients must not change.
    want_out, _, _, want_grads = run_layer(layer, case, "reference", with_attention=False)
    out, _, _, grads = run_layer(layer, case, backend, with_attention=False)
    what = f"{backend} output without attention"
    assert_agrees(out, want_out, part(exact_free, 0), tol, what)
    for name, want in want_grads.items():
        what = f"{backend} gradient of {name} without attention"
        assert_agrees(grads[name], want, part(exact_free, 3, name), tol, what)


def small_operator_inputs(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    num_src, num_dst, H, C, D = 6, 5, 2, 3, 2
    src = torch.tensor([0, 1, 1, 2, 3, 5, 5, 4, 0, 2])
    dst = torch.tensor([0, 0, 0, 1, 1, 2, 2, 2, 4, 4])  # node 3 is isolated; (1, 0) repeated
    edge_index = torch.stack([src, dst])
    E = src.numel()

    def rand(*shape):
        return torch.randn(*shape, generator=g, dtype=torch.float64, requires_grad=True)

    return edge_index, num_src, num_dst, E, H, C, D, rand
