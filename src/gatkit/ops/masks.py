r"""Which generator draws gatkit's dropout keep-masks :math:`m \sim \mathrm{Bernoulli}(1 - p)`.

- ``"philox"`` (default): on the CPU, a counter-based generator (Philox4x32-10, in the C++
  extension) keyed by one 63-bit seed taken from torch's global generator, so
  ``torch.manual_seed`` still reproduces every mask, for any number of threads. It draws in
  parallel, where torch's CPU ``bernoulli_`` draws one entry after another (on this machine
  22 ms against 183 ms for 21 M entries; with torch's masks, drawing them took 556 of the
  2,000 ms of a GAT training step of the benchmark model). Its masks differ from
  ``F.dropout``'s; their distribution is the same.
  On other devices (CUDA draws its masks in parallel already), or where the C++ extension
  is not built, torch's masks are drawn instead.
- ``"torch"``: ``bernoulli_`` from torch's global generator, exactly as ``F.dropout`` draws
  its mask, so for a seed gatkit drops what PyG drops (the equivalence tests use it).

Choose with :func:`set_mask_generator`, :func:`use_mask_generator` or ``GATKIT_MASKS``.
The masks drawn here are the fused layers' attention dropout (and the reference path's) and
:func:`gatkit.nn.lean_dropout`; the per-head input masks of the authors' placement
(:class:`gatkit.nn.HeadwiseProjection`, :class:`gatkit.nn.FeatureDropout`) keep torch's.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

import torch
from torch import Tensor

__all__ = ["draw_keep_mask", "get_mask_generator", "set_mask_generator", "use_mask_generator"]

GENERATORS = ("philox", "torch")
DEFAULT_GENERATOR = "philox"
_state = {"generator": os.environ.get("GATKIT_MASKS", DEFAULT_GENERATOR) or DEFAULT_GENERATOR}


def set_mask_generator(name: str) -> None:
    """Draw keep-masks with ``"philox"`` (the default) or ``"torch"`` (``F.dropout``'s stream)."""
    if name not in GENERATORS:
        raise ValueError(f"mask generator must be one of {GENERATORS}, got {name!r}")
    _state["generator"] = name


def get_mask_generator() -> str:
    """The generator in use (``GATKIT_MASKS`` sets the initial one)."""
    name = _state["generator"]
    if name not in GENERATORS:
        raise ValueError(f"GATKIT_MASKS must be one of {GENERATORS}, got {name!r}")
    return name


@contextlib.contextmanager
def use_mask_generator(name: str) -> Iterator[None]:
    """Within the block, draw keep-masks with ``name``."""
    previous = _state["generator"]
    set_mask_generator(name)
    try:
        yield
    finally:
        _state["generator"] = previous


def draw_keep_mask(
    shape: torch.Size | tuple[int, ...], keep_prob: float, device, like: Tensor | None = None
) -> Tensor:
    """A ``uint8`` tensor of ``shape``: 1 with probability ``keep_prob``, else 0.

    With torch's generator and ``like`` given (a tensor of ``shape`` about to be dropped),
    the mask takes ``like``'s strides, as ``F.dropout``'s noise does: ``bernoulli_`` fills
    memory in order, so a strided input is dropped exactly as ``F.dropout`` drops it.
    Otherwise the mask is contiguous.
    """
    device = torch.device(device)
    if get_mask_generator() == "philox" and device.type == "cpu":
        from gatkit.ops.fused_cpu import cpp_kernels

        kernels = cpp_kernels()
        if kernels is not None:
            seed = int(torch.randint(0, 2**63 - 1, (1,), dtype=torch.int64))
            keep = torch.empty(shape, dtype=torch.uint8)
            kernels.bernoulli_mask(keep, float(keep_prob), seed)
            return keep
    if like is not None:
        return torch.empty_like(like, dtype=torch.uint8).bernoulli_(keep_prob)
    return torch.empty(shape, dtype=torch.uint8, device=device).bernoulli_(keep_prob)
