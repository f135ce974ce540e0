r"""Dropout, after an optional ELU, that keeps one byte per entry for the backward pass.

.. math::
    \mathbf{y} = \mathrm{drop}_p\big(\phi(\mathbf{z})\big)
      = \phi(\mathbf{z}) \odot \mathbf{m} / (1 - p), \qquad
    m \sim \mathrm{Bernoulli}(1 - p), \qquad \phi \in \{\mathrm{ELU}, \mathrm{id}\},

the step between two layers of the GAT paper's model (ELU, then dropout of the next layer's
input). ``F.dropout(F.elu(z), p)`` keeps, for the backward pass, ``z`` for the gradient of the
ELU, the float mask :math:`\mathbf{m}/(1-p)` for the gradient of the dropout, and the next
layer keeps :math:`\mathbf{y}` for the gradient of its weight: 12 bytes per entry in float32.
:func:`lean_dropout` keeps ``z`` and :math:`\mathbf{m}` as ``uint8`` (5 bytes) and marks
:math:`\mathbf{y}` with :class:`DroppedFeatures`, the recipe that forms it again; a gatkit
attention layer that reads :math:`\mathbf{y}` saves that recipe instead of the tensor
(:mod:`gatkit.nn.recompute`). On the first layer's input (:math:`\phi = \mathrm{id}`, an input
that needs no gradient) the layer then keeps the mask alone next to the input its caller
holds anyway.

The mask comes from :mod:`gatkit.ops.masks`: by default, on the CPU, its parallel Philox
generator (seeded from torch's global generator). With
``gatkit.ops.set_mask_generator("torch")`` it is drawn with ``bernoulli_`` from the global
generator, as ``F.dropout`` draws its mask on the CPU, so for a seed the result equals
``F.dropout(F.elu(z), p)`` bit for bit, in the forward and the backward pass (on CUDA
``F.dropout`` uses a fused kernel with its own random stream: the distribution is the same,
the draws are not).
"""

from __future__ import annotations

import weakref

import torch
from torch import Tensor, nn

from gatkit.ops.masks import draw_keep_mask

__all__ = ["DroppedFeatures", "LeanDropout", "lean_dropout", "recipe_of"]

ACTIVATIONS = (None, "elu")
_RECIPE_ATTRIBUTE = "_gatkit_dropped_features"


class DroppedFeatures:
    r"""How to form :math:`\mathbf{y} = \phi(\mathbf{z}) \odot \mathbf{m} / (1 - p)` again.

    ``source`` is :math:`\mathbf{z}` (detached: the recipe holds no autograd graph), ``keep``
    the ``uint8`` mask, ``scale`` the float :math:`1 / (1 - p)` exactly as ``F.dropout``
    forms it. :meth:`form` refuses to run if ``source`` or ``keep`` were written in place
    since the forward pass. The tensor it forms is shared by the readers alive at the same
    time and freed with the last of them (a weak reference): a reader that comes later
    forms it again, one pass over ``z`` and the mask, rather than have it kept through the
    backward pass (measured: +4% time, 40–50 MB less peak on the arxiv-sized benchmark).
    """

    def __init__(
        self,
        source: Tensor,
        keep: Tensor,
        scale: float,
        activation: str | None,
        output_version: int,
    ) -> None:
        self.source, self.keep = source.detach(), keep
        self.scale, self.activation = scale, activation
        self.versions = self._versions()
        self._formed: weakref.ref | None = None
        self.output_version = output_version  # of the marked output when it was made

    def _versions(self) -> tuple[int, int]:
        return (self.source._version, self.keep._version)

    def form(self) -> Tensor:
        """:math:`\\phi(\\mathbf{z}) \\odot \\mathbf{m} / (1 - p)`, without autograd history."""
        formed = self._formed() if self._formed is not None else None
        if formed is not None:
            return formed
        if self._versions() != self.versions:
            raise RuntimeError(
                "a dropped input saved for the backward pass of a gatkit attention layer "
                "cannot be formed again: the tensor it was dropped from (or its mask) was "
                "modified in place between the forward and the backward pass"
            )
        with torch.no_grad():
            formed = _drop(self.source, self.keep, self.scale, self.activation)
        self._formed = weakref.ref(formed)
        return formed


def recipe_of(tensor: Tensor) -> DroppedFeatures | None:
    """The recipe of a :func:`lean_dropout` output, if ``tensor`` is one and is unchanged."""
    recipe = getattr(tensor, _RECIPE_ATTRIBUTE, None)
    if recipe is None or tensor._version != recipe.output_version:
        return None
    return recipe


def _drop(z: Tensor, keep: Tensor, scale: float, activation: str | None) -> Tensor:
    """:math:`\\phi(\\mathbf{z}) \\odot \\mathbf{m}\\,s` as one new tensor.

    A kept entry is :math:`\\phi(z)\\,s`, the value ``F.dropout`` gives, a dropped one is 0.
    On the CPU the mask is applied by one pass of the C++ extension
    (``csrc/masked_scale.cpp``); elsewhere, or without the extension, by ``torch.where``
    reading the ``uint8`` mask as ``bool`` (no float copy of the mask either way).
    """
    source = nn.functional.elu(z) if activation == "elu" else z
    # The ELU's output is a new tensor already: the mask is applied to it in place.
    out = source if activation == "elu" else torch.empty_like(z)
    kernels = _masked_scale_kernels(z)
    dense = all(t.is_contiguous() for t in (source, keep, out))
    if kernels is not None and dense:
        kernels.masked_scale(source, keep, scale, out)
        return out
    zero = torch.zeros((), dtype=z.dtype, device=z.device)
    return torch.where(keep.view(torch.bool), source, zero, out=out).mul_(scale)


def _masked_scale_kernels(z: Tensor):
    """The C++ kernel module for CPU float tensors (``None``: use ``torch.where``)."""
    if z.device.type != "cpu" or z.dtype not in (torch.float32, torch.float64):
        return None
    from gatkit.ops.fused_cpu import cpp_kernels  # builds or loads the extension once

    return cpp_kernels()


class _ActivationDropout(torch.autograd.Function):
    r"""``y = φ(z) ⊙ m · s`` with ``m`` uint8 and ``s = 1 / (1 - p)``; keeps ``z`` and ``m``.

    Backward: :math:`\partial L/\partial \mathbf{z} = \phi'(\mathbf{z}) \odot
    (\partial L/\partial \mathbf{y}) \odot \mathbf{m}\,s`, with the ELU's gradient computed
    by the same ATen routine autograd uses for ``F.elu``.
    """

    @staticmethod
    def forward(ctx, z: Tensor, keep: Tensor, scale: float, activation: str | None) -> Tensor:
        ctx.scale, ctx.activation = scale, activation
        ctx.save_for_backward(z if activation is not None else None, keep)
        return _drop(z, keep, scale, activation)

    @staticmethod
    def backward(ctx, grad_out: Tensor):
        z, keep = ctx.saved_tensors
        grad = _drop(grad_out, keep, ctx.scale, None)  # as F.dropout: grad · (m / (1 - p))
        if ctx.activation == "elu":
            grad = torch.ops.aten.elu_backward(grad, 1.0, 1, 1, False, z)
        return grad, None, None, None


def check_arguments(p: float, activation: str | None) -> None:
    """Refuse a dropout probability outside ``[0, 1)`` or an unknown activation."""
    if activation not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {ACTIVATIONS}, got {activation!r}")
    if not isinstance(p, float | int) or isinstance(p, bool) or not 0.0 <= p < 1.0:
        raise ValueError(f"dropout probability must lie in [0, 1), got {p!r}")


def lean_dropout(
    z: Tensor, p: float, training: bool = True, activation: str | None = None
) -> Tensor:
    r""":math:`\mathrm{drop}_p(\phi(\mathbf{z}))`, keeping ``z`` and a ``uint8`` mask for backward.

    Args:
        z: ``[N, F]`` (any shape) floating-point features.
        p: probability of zeroing an entry, in ``[0, 1)``.
        training: dropout is applied only when true (then only :math:`\phi` is applied).
        activation: ``None`` (identity) or ``"elu"`` (applied before the dropout).

    Returns:
        A new tensor of ``z``'s shape; in training mode it carries its
        :class:`DroppedFeatures` recipe (:func:`recipe_of`).
    """
    check_arguments(p, activation)
    if not z.is_floating_point():
        raise TypeError(f"lean_dropout needs floating-point features, got {z.dtype}")
    if not training or p == 0.0:
        return nn.functional.elu(z) if activation == "elu" else z
    keep = draw_keep_mask(z.shape, 1.0 - p, z.device, like=z)
    scale = float(torch.ones((), dtype=z.dtype).div_(1.0 - p))  # F.dropout's 1 / (1 - p)
    out = _ActivationDropout.apply(z, keep, scale, activation)
    setattr(out, _RECIPE_ATTRIBUTE, DroppedFeatures(z, keep, scale, activation, out._version))
    return out


class LeanDropout(nn.Module):
    """Module form of :func:`lean_dropout`: ``φ`` then dropout ``p`` in training mode."""

    def __init__(self, p: float, activation: str | None = None) -> None:
        super().__init__()
        check_arguments(p, activation)
        self.p, self.activation = p, activation

    def forward(self, z: Tensor) -> Tensor:
        return lean_dropout(z, self.p, self.training, self.activation)

    def extra_repr(self) -> str:
        return f"p={self.p}, activation={self.activation!r}"
