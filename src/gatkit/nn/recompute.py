r"""Keep a layer's projections :math:`\mathbf{W}\mathbf{h} + \mathbf{b}` as recipes for backward.

Autograd would keep each projected node tensor (``[N, H, C]``, e.g. :math:`\mathbf{W}\mathbf{h}`
of GAT or :math:`\mathbf{W}_s\mathbf{h}, \mathbf{W}_t\mathbf{h}` of GATv2) alive from the
forward pass to the backward pass, because the attention kernels and the score products read
it there. The projection's input :math:`\mathbf{h}` is kept anyway (``nn.Linear`` needs it for
the gradient of :math:`\mathbf{W}`), so inside :func:`recompute_projections` such a tensor is
saved as ``(h, W, b)`` and formed again, by one matrix product, when the backward pass asks
for it: ``N H C`` floats less per projection for one product more.

When :math:`\mathbf{h}` is itself the output of :func:`gatkit.nn.recomputed_dropout.lean_dropout`,
neither the projection's own backward nor the recipe keeps :math:`\mathbf{h}`: both keep its
:class:`~gatkit.nn.recomputed_dropout.DroppedFeatures` (the tensor it was dropped from and a
one-byte mask) and form it again when asked (:func:`dropped_inputs_as_recipes`).

Writing in place into :math:`\mathbf{h}` or the weights between forward and backward is
refused with an error, as autograd refuses it for the tensors it saves itself.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import NamedTuple

import torch
from torch import Tensor, nn

from gatkit.nn.recomputed_dropout import DroppedFeatures, recipe_of

__all__ = ["LinearMap", "ProjectionRecipe", "dropped_inputs_as_recipes", "recompute_projections"]


class LinearMap(NamedTuple):
    """A linear map given by its tensors (e.g. GATv2's ``W_s`` and ``W_t`` stacked as one)."""

    weight: Tensor
    bias: Tensor | None


class ProjectionRecipe:
    """How to form one saved projection again: ``F.linear(source, weight, bias).view(shape)``.

    The weight and bias are the tensors the layer held when the forward pass ran (under
    ``torch.func.functional_call`` these are the substituted ones, not the module's). Several
    backward nodes may read the same projection (the score products and the attention
    kernel); it is formed once, at the first read, and shared by the later ones.
    """

    def __init__(self, source: Tensor, linear: nn.Linear | LinearMap, shape: torch.Size) -> None:
        # A lean-dropout output is kept as its own recipe, not as a tensor.
        self.dropped: DroppedFeatures | None = recipe_of(source)
        self.source = None if self.dropped is not None else source
        self.weight, self.bias = linear.weight, linear.bias
        self.shape = shape
        self.versions = self._versions()
        self._formed: Tensor | None = None

    def _versions(self) -> tuple[int, ...]:
        tensors = (self.source, self.weight, self.bias)
        return tuple(t._version for t in tensors if t is not None)

    def recompute(self) -> Tensor:
        if self._formed is not None:
            return self._formed
        if self._versions() != self.versions:
            raise RuntimeError(
                "a projection saved for the backward pass of a gatkit attention layer cannot "
                "be formed again: its input or the layer's weights were modified in place "
                "between the forward and the backward pass"
            )
        source = self.dropped.form() if self.dropped is not None else self.source
        with torch.no_grad():
            formed = nn.functional.linear(source, self.weight, self.bias).view(self.shape)
        self._formed = formed
        return formed


@contextlib.contextmanager
def recompute_projections(
    projections: list[tuple[Tensor, Tensor, nn.Linear | LinearMap]],
) -> Iterator[None]:
    """Within the block, save each ``projected`` tensor as the recipe ``(source, linear)``.

    Args:
        projections: ``(projected, source, linear)`` triples with
            ``projected == linear(source).view(projected.shape)``. Only the identity of
            ``projected`` (storage, shape, strides) is kept, not the tensor itself.
    """
    # One recipe per projection, shared by its readers. The hooks outlive this block (each
    # saved tensor holds them until its backward node has run), so the list is emptied on
    # exit: afterwards only the saved recipes hold their sources, not the hooks.
    keys = [
        (p.data_ptr(), p.shape, p.stride(), p.dtype, p.device, ProjectionRecipe(s, lin, p.shape))
        for p, s, lin in projections
    ]

    def pack(tensor: Tensor) -> Tensor | ProjectionRecipe | DroppedFeatures:
        for ptr, shape, stride, dtype, device, recipe in keys:
            if (tensor.data_ptr(), tensor.shape, tensor.stride()) == (ptr, shape, stride) and (
                tensor.dtype == dtype and tensor.device == device
            ):
                return recipe
        return _pack_dropped(tensor)

    def unpack(saved: Tensor | ProjectionRecipe | DroppedFeatures) -> Tensor:
        return saved.recompute() if isinstance(saved, ProjectionRecipe) else _unpack(saved)

    try:
        with torch.autograd.graph.saved_tensors_hooks(pack, unpack):
            yield
    finally:
        keys.clear()


def _pack_dropped(tensor: Tensor) -> Tensor | DroppedFeatures:
    recipe = recipe_of(tensor)
    return tensor if recipe is None else recipe


def _unpack(saved: Tensor | DroppedFeatures) -> Tensor:
    return saved.form() if isinstance(saved, DroppedFeatures) else saved


@contextlib.contextmanager
def dropped_inputs_as_recipes() -> Iterator[None]:
    """Within the block, save every unchanged lean-dropout output as its recipe.

    Used around a layer's projections ``W h``: the matrix product keeps ``h`` for the
    gradient of ``W``; when ``h`` came from :func:`gatkit.nn.recomputed_dropout.lean_dropout` it
    keeps the tensor ``h`` was dropped from and the ``uint8`` mask instead.
    """
    if not torch.is_grad_enabled():
        yield
        return
    with torch.autograd.graph.saved_tensors_hooks(_pack_dropped, _unpack):
        yield
