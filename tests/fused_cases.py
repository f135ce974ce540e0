"""Shared cases of the fused-kernel tests: adversarial graphs, layer runs, comparisons."""

from __future__ import annotations

import torch

from gatkit import ops
from graph_cases import assert_relative, random_graph_case

TOLERANCE = {torch.float32: 1e-5, torch.float64: 1e-10}


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
    weights = torch.randn(out.shape, generator=torch.Generator().manual_seed(1), dtype=out.dtype)
    loss = (out * weights).sum()
    if alpha is not None:
        alpha_weights = torch.randn(
            alpha.shape, generator=torch.Generator().manual_seed(2), dtype=out.dtype
        )
        loss = loss + (alpha * alpha_weights).sum()
    grads = torch.autograd.grad(loss, inputs + list(layer.parameters()))
    names = ["x_src", "x_dst"][: 1 + case.bipartite] + ["edge_attr"] * (edge_attr is not None)
    names += [name for name, _ in layer.named_parameters()]
    return out, used, alpha, dict(zip(names, grads, strict=True))


def check_backend_matches_reference(layer, case, backend, dtype):
    tol = TOLERANCE[dtype]
    want_out, want_used, want_alpha, want_grads = run_layer(layer, case, "reference")
    out, used, alpha, grads = run_layer(layer, case, backend)
    assert torch.equal(used, want_used), "edge order of the returned edge_index changed"
    assert_relative(out, want_out, tol, f"{backend} output")
    assert_relative(alpha, want_alpha, tol, f"{backend} attention")
    for name, want in want_grads.items():
        assert_relative(grads[name], want, tol, f"{backend} gradient of {name}")
    # Not asked for alpha, the kernels skip it: the output and gradients must not change.
    want_out, _, _, want_grads = run_layer(layer, case, "reference", with_attention=False)
    out, _, _, grads = run_layer(layer, case, backend, with_attention=False)
    assert_relative(out, want_out, tol, f"{backend} output without attention")
    for name, want in want_grads.items():
        assert_relative(grads[name], want, tol, f"{backend} gradient of {name} without attention")


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
