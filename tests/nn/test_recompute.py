"""Projections kept as recipes: same gradients, formed once, in-place writes refused."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from gatkit import ops
from gatkit.nn import GATConv, GATv2Conv
from gatkit.nn.recompute import ProjectionRecipe, recompute_projections


def _projection_and_loss(use_recipes: bool):
    torch.manual_seed(0)
    linear = nn.Linear(5, 6)
    x = torch.randn(9, 5, requires_grad=True)
    att = torch.randn(2, 3, requires_grad=True)
    projected = linear(x).view(9, 2, 3)
    context = recompute_projections([(projected, x, linear)]) if use_recipes else None
    with context if context is not None else torch.enable_grad():
        loss = ((projected * att).sum(-1) ** 2).sum() + (projected.exp() * att).sum()
    return loss, x, att, linear


def test_recipes_give_the_same_gradients_as_saved_projections():
    grads = []
    for use_recipes in (False, True):
        loss, x, att, linear = _projection_and_loss(use_recipes)
        grads.append(torch.autograd.grad(loss, [x, att, linear.weight, linear.bias]))
    for plain, recomputed in zip(*grads, strict=True):
        torch.testing.assert_close(recomputed, plain, rtol=0, atol=0)


def test_projection_read_by_two_backward_nodes_is_formed_once(monkeypatch):
    calls = []
    original = nn.functional.linear
    monkeypatch.setattr(nn.functional, "linear", lambda *a: calls.append(1) or original(*a))
    linear = nn.Linear(5, 6)
    x = torch.randn(9, 5, requires_grad=True)
    other = torch.randn(9, 2, 3, requires_grad=True)
    projected = original(x, linear.weight, linear.bias).view(9, 2, 3)
    with recompute_projections([(projected, x, linear)]):
        loss = (projected * other).sum() + (projected * other.flip(0)).sum()
    loss.backward()
    assert len(calls) == 1, f"the projection was formed {len(calls)} times in backward"
    torch.testing.assert_close(other.grad, (projected + projected.flip(0)).detach())


def test_in_place_write_to_the_input_before_backward_is_refused():
    linear = nn.Linear(5, 6)
    x = torch.randn(9, 5, requires_grad=True)
    source = x * 1.0
    projected = linear(source).view(9, 2, 3)
    with recompute_projections([(projected, source, linear)]):
        loss = (projected * torch.randn(9, 2, 3, requires_grad=True)).sum()
    with torch.no_grad():
        source.add_(1.0)
    with pytest.raises(RuntimeError, match="modified in place"):
        loss.backward()


@pytest.mark.parametrize("operator", [GATConv, GATv2Conv])
def test_fused_layer_saves_its_projections_as_recipes_in_training(operator):
    layer = operator(4, 3, heads=2).train()
    x = torch.randn(10, 4, requires_grad=True)
    edge_index = torch.randint(0, 10, (2, 30))
    kinds = []
    original = ProjectionRecipe.recompute

    def spy(self):
        kinds.append(tuple(self.shape))
        return original(self)

    ProjectionRecipe.recompute = spy
    try:
        layer(x, edge_index).sum().backward()
    finally:
        ProjectionRecipe.recompute = original
    kernels = ops.kernels_for(x.device, x.dtype)
    if operator is GATv2Conv and kernels.pair_layout:  # W_s h and W_t h as one [N, 2, H, C]
        assert kinds == [(10, 2, 2, 3)], kinds
    else:
        assert (10, 2, 3) in kinds
