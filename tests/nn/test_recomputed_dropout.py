"""lean_dropout: equal to F.dropout(F.elu(z)) for a seed; layers keep its recipe, not its output."""

from __future__ import annotations

import weakref

import pytest
import torch
import torch.nn.functional as F

from gatkit.nn import GATConv, GATv2Conv, LeanDropout, lean_dropout
from gatkit.nn.recomputed_dropout import DroppedFeatures, recipe_of


@pytest.mark.parametrize("activation", [None, "elu"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_equals_torch_dropout_forward_and_backward_for_a_seed(activation, dtype):
    z = torch.randn(300, 16, dtype=dtype, requires_grad=True)
    upstream = torch.randn(300, 16, dtype=dtype)
    results = []
    for lean in (False, True):
        torch.manual_seed(7)
        if lean:
            y = lean_dropout(z, 0.6, True, activation)
        else:
            y = F.dropout(F.elu(z) if activation else z, 0.6, True)
        (grad,) = torch.autograd.grad(y, z, upstream)
        results.append((y.detach(), grad))
    (y_ref, g_ref), (y, g) = results
    assert torch.equal(y, y_ref)  # same mask, same scale: equal values
    assert torch.equal(g, g_ref)
    assert 0.55 < (y == 0).double().mean() < 0.65  # p = 0.6 of the entries dropped


def test_recipe_forms_the_output_again():
    z = torch.randn(50, 8, requires_grad=True)
    y = lean_dropout(z, 0.5, True, "elu")
    recipe = recipe_of(y)
    assert isinstance(recipe, DroppedFeatures)
    assert recipe.keep.dtype == torch.uint8
    assert torch.equal(recipe.form(), y.detach())


def test_evaluation_mode_and_zero_p_apply_only_the_activation():
    z = torch.randn(20, 4)
    assert torch.equal(lean_dropout(z, 0.6, False, "elu"), F.elu(z))
    assert lean_dropout(z, 0.0, True) is z
    module = LeanDropout(0.6, "elu").eval()
    assert torch.equal(module(z), F.elu(z))
    assert recipe_of(module(z)) is None


def test_an_output_written_in_place_is_not_taken_for_its_recipe():
    y = lean_dropout(torch.randn(20, 4), 0.5, True)
    assert recipe_of(y) is not None
    y.add_(1.0)
    assert recipe_of(y) is None


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [({"p": 1.0}, ValueError), ({"p": -0.1}, ValueError), ({"activation": "relu"}, ValueError)],
)
def test_bad_arguments_are_refused(kwargs, error):
    arguments = {"p": 0.5, "activation": None, **kwargs}
    with pytest.raises(error):
        lean_dropout(torch.randn(3, 2), arguments["p"], True, arguments["activation"])


def test_integer_features_are_refused():
    with pytest.raises(TypeError, match="floating-point"):
        lean_dropout(torch.ones(3, 2, dtype=torch.long), 0.5)


def _two_layer_step(operator, lean: bool):
    torch.manual_seed(3)
    first, second = operator(6, 4, heads=2), operator(8, 3, heads=1, concat=False)
    x = torch.randn(40, 6)
    edge_index = torch.randint(0, 40, (2, 160))
    torch.manual_seed(11)
    if lean:
        h = second(
            lean_dropout(first(lean_dropout(x, 0.5), edge_index), 0.5, True, "elu"), edge_index
        )
    else:
        h = second(F.dropout(F.elu(first(F.dropout(x, 0.5), edge_index)), 0.5), edge_index)
    h.pow(2).sum().backward()
    return h.detach(), [p.grad for p in (*first.parameters(), *second.parameters())]


@pytest.mark.parametrize("operator", [GATConv, GATv2Conv])
def test_layers_fed_by_lean_dropout_match_plain_dropout(operator):
    (out_ref, grads_ref), (out, grads) = (
        _two_layer_step(operator, False),
        _two_layer_step(operator, True),
    )
    torch.testing.assert_close(out, out_ref, rtol=1e-6, atol=1e-6)
    for g, g_ref in zip(grads, grads_ref, strict=True):
        torch.testing.assert_close(g, g_ref, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("operator", [GATConv, GATv2Conv])
def test_layer_keeps_no_reference_to_its_dropped_input(operator):
    layer = operator(6, 4, heads=2).train()
    x = torch.randn(30, 6)
    h = lean_dropout(x, 0.5)
    alive = weakref.ref(h)
    out = layer(h, torch.randint(0, 30, (2, 90)))
    del h
    assert alive() is None, "the layer's backward graph holds its dropped input"
    out.sum().backward()
    assert layer.project_source.weight.grad is not None


def test_write_into_the_dropped_from_tensor_before_backward_is_refused():
    layer = GATConv(6, 4, heads=2).train()
    x = torch.randn(30, 6)
    out = layer(lean_dropout(x, 0.5), torch.randint(0, 30, (2, 90)))
    x.add_(1.0)
    with pytest.raises(RuntimeError, match="modified in place"):
        out.sum().backward()


@pytest.mark.parametrize("activation", [None, "elu"])
def test_the_fallback_without_the_extension_gives_the_same_values(activation, monkeypatch):
    import gatkit.nn.recomputed_dropout as module

    z = torch.randn(64, 12, dtype=torch.float64)
    torch.manual_seed(2)
    with_kernel = lean_dropout(z, 0.3, True, activation)
    monkeypatch.setattr(module, "_masked_scale_kernels", lambda _: None)
    torch.manual_seed(2)
    fallback = lean_dropout(z, 0.3, True, activation)
    torch.manual_seed(2)
    strided = lean_dropout(z.t(), 0.3, True, activation)  # a non-contiguous input
    torch.manual_seed(2)
    reference = F.dropout(F.elu(z.t()) if activation else z.t(), 0.3, True)
    assert torch.equal(with_kernel, fallback)
    assert torch.equal(strided, reference)


def test_masked_scale_kernel_refuses_mismatched_tensors():
    from gatkit.ops.fused_cpu import cpp_kernels

    kernels = cpp_kernels()
    if kernels is None:
        pytest.skip("the C++ extension is not built here (GATKIT_NO_CPP or no compiler)")
    src = torch.randn(6)
    with pytest.raises(RuntimeError, match="uint8"):
        kernels.masked_scale(src, torch.ones(6, dtype=torch.bool), 2.0, torch.empty(6))
    with pytest.raises(RuntimeError, match="sizes differ"):
        kernels.masked_scale(src, torch.ones(5, dtype=torch.uint8), 2.0, torch.empty(6))
