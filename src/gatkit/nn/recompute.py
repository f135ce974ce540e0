r"""Keep a layer's projections :math:`\mathbf{W}\mathbf{h} + \mathbf{b}` as recipes for backward.

Autograd would keep each projected node tensor (``[N, H, C]``, e.g. :math:`\mathbf{W}\mathbf{h}`
of GAT or :math:`\mathbf{W}_s\mathbf{h}, \mathbf{W}_t\mathbf{h}` of GATv2) alive from the
forward pass to the backward pass, because the attention kernels and the score products read
it there. The projection's input :math:`\mathbf{h}` is kept anyway (``nn.Linear`` needs it for
the gradient of :math:`\mathbf{W}`), so inside :func:`recompute_projections` such a tensor is
saved as ``(h, W, b)`` and formed again, by one matrix product, when the backward pass asks
for it: ``N H C`` floats less per projection for one product more.

Writing in place into :math:`\mathbf{h}` or the weights between forward and backward is
refused with an error, as autograd refuses it for the tensors it saves itself.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import Tensor, nn

__all__ = ["ProjectionRecipe", "recompute_projections"]


class ProjectionRecipe:
    """How to form one saved projection again: ``F.linear(source, weight, bias).view(shape)``.

    The weight and bias are the tensors the layer held when the forward pass ran (under
    ``torch.func.functional_call`` these are the substituted ones, not the module's). Several
    backward nodes may read the same projection (the score products and the attention
    kernel); it is formed once, at the first read, and shared by the later ones.
    """

    def __init__(self, source: Tensor, linear: nn.Linear, shape: torch.Size) -> None:
        self.source, self.weight, self.bias = source, linear.weight, linear.bias
        self.shape = shape
        self.versions = self._versions()
        self._formed: Tensor | None = None

    def _versions(self) -> tuple[int, ...]:
        return tuple(t._version for t in (self.source, self.weight, self.bias) if t is not None)

    def recompute(self) -> Tensor:
        if self._formed is not None:
            return self._formed
        if self._versions() != self.versions:
            raise RuntimeError(
                "a projection saved for the backward pass of a gatkit attention layer cannot "
                "be formed again: its input or the layer's weights were modified in place "
                "between the forward and the backward pass"
            )
        with torch.no_grad():
            formed = nn.functional.linear(self.source, self.weight, self.bias).view(self.shape)
        self._formed = formed
        return formed


@contextlib.contextmanager
def recompute_projections(
    projections: list[tuple[Tensor, Tensor, nn.Linear]],
) -> Iterator[None]:
    """Within the block, save each ``projected`` tensor as the recipe ``(source, linear)``.

    Args:
        projections: ``(projected, source, linear)`` triples with
            ``projected == linear(source).view(projected.shape)``. Only the identity of
            ``projected`` (storage, shape, strides) is kept, not the tensor itself.
    """
    keys = [
        (p.data_ptr(), p.shape, p.stride(), p.dtype, p.device, source, linear)
        for p, source, linear in projections
    ]

    recipes: dict[int, ProjectionRecipe] = {}  # one per projection, shared by its readers

    def pack(tensor: Tensor) -> Tensor | ProjectionRecipe:
        for ptr, shape, stride, dtype, device, source, linear in keys:
            if (tensor.data_ptr(), tensor.shape, tensor.stride()) == (ptr, shape, stride) and (
                tensor.dtype == dtype and tensor.device == device
            ):
                return recipes.setdefault(ptr, ProjectionRecipe(source, linear, shape))
        return tensor

    def unpack(saved: Tensor | ProjectionRecipe) -> Tensor:
        return saved.recompute() if isinstance(saved, ProjectionRecipe) else saved

    with torch.autograd.graph.saved_tensors_hooks(pack, unpack):
        yield
