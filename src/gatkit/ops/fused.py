r"""Fused, memory-lean graph attention (GAT and GATv2) and the switch between backends.

For each destination :math:`i` with in-edges :math:`\mathcal{N}(i)` (one CSR segment) and
each head, one pass computes the edge logits, the stable softmax and the weighted sum:

.. math::
    l_{ij} = \begin{cases}
        \mathrm{LeakyReLU}(s_j + t_i + \epsilon_{ij}) & \text{GAT: } s = \mathbf{a}_s^\top
            \mathbf{W}\mathbf{h},\ t = \mathbf{a}_t^\top \mathbf{W}\mathbf{h},\
            \epsilon = \mathbf{a}_e^\top \mathbf{W}_e \mathbf{e} \\
        \mathbf{a}^\top \mathrm{LeakyReLU}(\mathbf{x}^s_j + \mathbf{x}^t_i + \mathbf{x}^e_{ij})
            & \text{GATv2: } \mathbf{x}^s = \mathbf{W}_s\mathbf{h},\
            \mathbf{x}^t = \mathbf{W}_t\mathbf{h},\ \mathbf{x}^e = \mathbf{W}_e \mathbf{e}
    \end{cases}

.. math::
    \alpha_{ij} = \frac{\exp(l_{ij} - m_i)}{\sum_{k \in \mathcal{N}(i)} \exp(l_{ik} - m_i)},
    \qquad
    \mathbf{o}_i = \sum_{j \in \mathcal{N}(i)} \alpha_{ij}\, d_{ij}\, \mathbf{v}_j,

with :math:`m_i` the maximum of the logits of :math:`i` (running in the Triton kernel, taken
over the whole segment first in the C++ kernel), :math:`d_{ij}` the attention-dropout
factor (:math:`0` or :math:`1/(1-p)`, exactly ``F.dropout`` applied to :math:`\alpha`) and
:math:`\mathbf{v} = \mathbf{W}\mathbf{h}` (GAT) or :math:`\mathbf{x}^s` (GATv2; a separate
:math:`\mathbf{v}` when the messages are dropped out and the scores are not).

The forward pass keeps, per destination and head, only the log-sum-exp
:math:`\lambda_i = m_i + \log \sum_k \exp(l_{ik} - m_i)`; the backward pass recomputes
:math:`\alpha_{ij} = \exp(l_{ij} - \lambda_i)` from the logit's inputs, so the C++ kernels
save node tensors and a one-byte dropout mask per edge and head, nothing of size
:math:`E H` in floats (the chunked and Triton fallbacks save :math:`\alpha`, ``[E, H]``):

.. math::
    g_{ij} = d_{ij} \langle \bar{\mathbf{o}}_i, \mathbf{v}_j \rangle + \bar\alpha_{ij},\quad
    \bar l_{ij} = \alpha_{ij}\Big(g_{ij} - \sum_{k} \alpha_{ik} g_{ik}\Big),\quad
    \bar{\mathbf{v}}_j \mathrel{+}= \alpha_{ij} d_{ij} \bar{\mathbf{o}}_i,

then through the LeakyReLU to the scores (GAT) or to :math:`\mathbf{x}^s, \mathbf{x}^t,
\mathbf{x}^e, \mathbf{a}` (GATv2). GATv2's ``[E, H, C]`` hidden
:math:`\mathbf{x}^s_j + \mathbf{x}^t_i + \mathbf{x}^e_{ij}` is never stored; with edge
features the ``[E, H, C]`` projection :math:`\mathbf{W}_e\mathbf{e}` is recomputed in the
backward pass from ``edge_attr`` and :math:`\mathbf{W}_e`.

Backends (:func:`set_backend`, or the ``GATKIT_BACKEND`` environment variable):

- ``"auto"`` (default) and ``"fused"``: C++/OpenMP on CPU (chunked PyTorch where it cannot
  be built), Triton on CUDA (chunked PyTorch without Triton);
- ``"reference"``: the layers compose :mod:`gatkit.ops.segment` (``[E, H, C]`` tensors);
- ``"cpp"``, ``"chunked"``, ``"triton"``: force one kernel set (for tests).
"""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import os
from collections.abc import Iterator
from dataclasses import dataclass
from types import ModuleType, SimpleNamespace
from typing import Any

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

from gatkit.ops import fused_chunked
from gatkit.ops.csr import EdgeCSR
from gatkit.ops.fused_cpu import announce_once, cpp_kernels
from gatkit.ops.masks import draw_keep_mask

__all__ = [
    "BACKENDS",
    "AttentionDropout",
    "attention_dropout",
    "gat_attention",
    "gatv2_attention",
    "get_backend",
    "kernels_for",
    "set_backend",
    "use_backend",
]

BACKENDS = ("auto", "fused", "reference", "cpp", "chunked", "triton")
_current = {"name": os.environ.get("GATKIT_BACKEND", "auto") or "auto"}


def set_backend(name: str) -> None:
    """Choose how the attention layers run: one of :data:`BACKENDS`."""
    if name not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {name!r}")
    _current["name"] = name


def get_backend() -> str:
    """The backend chosen by :func:`set_backend` (``"auto"`` by default)."""
    return _current["name"]


@contextlib.contextmanager
def use_backend(name: str) -> Iterator[None]:
    """Run the block with backend ``name``, then restore the previous one."""
    previous = get_backend()
    set_backend(name)
    try:
        yield
    finally:
        _current["name"] = previous


@dataclass(frozen=True)
class AttentionDropout:
    """The attention dropout of one forward pass: which coefficients survive, and ``p``.

    ``mask`` is ``[E, H]`` ``uint8`` in the user's edge order (1 = kept), drawn by
    :func:`gatkit.ops.masks.draw_keep_mask` (on the CPU by default with its Philox
    generator; with the ``"torch"`` generator exactly as ``F.dropout`` draws its mask for an
    ``[E, H]`` tensor, so that with the same random state PyG drops the same coefficients).
    The fused and the reference paths draw it alike; one byte per edge and head instead of
    a float scale.
    """

    mask: Tensor
    p: float

    @property
    def keep_prob(self) -> float:
        return 1.0 - self.p

    def scale(self, dtype: torch.dtype) -> Tensor:
        """``[E, H]`` factors ``d``: ``alpha * d == F.dropout(alpha, p)`` with this mask."""
        return _mask_scale(self.mask, self.keep_prob, dtype)


def _mask_scale(mask: Tensor, keep_prob: float, dtype: torch.dtype) -> Tensor:
    """``mask / keep_prob`` in ``dtype``: 0 or ``1 / (1 - p)``, as ``F.dropout`` forms it."""
    return mask.to(dtype).div_(keep_prob)


def attention_dropout(
    num_edges: int, heads: int, p: float, training: bool, device: torch.device
) -> AttentionDropout | None:
    """Draw the ``[E, H]`` attention-dropout mask (``None`` when inactive)."""
    if not training or p == 0.0:
        return None
    return AttentionDropout(draw_keep_mask((num_edges, heads), 1.0 - p, device), p)


def _keep_prob(drop: AttentionDropout | None) -> float:
    return 1.0 if drop is None else drop.keep_prob


def _scale_kernels(kernels: Any) -> SimpleNamespace:
    """A kernel set that takes a float dropout scale and saves ``alpha`` ``[E, H]``.

    The chunked PyTorch and the Triton kernels work on per-edge tensors in the user's order;
    the float scale is rebuilt from the ``uint8`` mask when each pass runs.
    """

    def scale_of(mask: Tensor | None, keep_prob: float, dtype: torch.dtype) -> Tensor | None:
        return None if mask is None else _mask_scale(mask, keep_prob, dtype)

    def gat_forward(csr, ss, sd, es, wh, slope, drop, need_alpha):
        scale = None if drop is None else drop.scale(wh.dtype)
        out, alpha = kernels.gat_forward(csr, ss, sd, es, wh, slope, scale)
        return out, alpha, (alpha, None if drop is None else drop.mask)

    def gat_backward(csr, ss, sd, es, wh, slope, keep_prob, saved, gout, galpha):
        alpha, mask = saved
        scale = scale_of(mask, keep_prob, wh.dtype)
        return kernels.gat_backward(csr, ss, sd, es, wh, slope, scale, alpha, gout, galpha)

    def gatv2_forward(csr, xs, xt, xe, att, slope, drop, vs, need_alpha):
        scale = None if drop is None else drop.scale(xs.dtype)
        out, alpha = kernels.gatv2_forward(csr, xs, xt, xe, att, slope, scale, vs)
        return out, alpha, (alpha, None if drop is None else drop.mask)

    def gatv2_backward(csr, xs, xt, xe, att, slope, keep_prob, saved, gout, galpha, need_gxe, vs):
        alpha, mask = saved
        scale = scale_of(mask, keep_prob, xs.dtype)
        return kernels.gatv2_backward(
            csr, xs, xt, xe, att, slope, scale, alpha, gout, galpha, need_gxe, vs
        )

    return SimpleNamespace(
        name=getattr(kernels, "__name__", "kernels").rsplit(".", 1)[-1],
        pair_layout=False,  # GATv2 needs W_s h and W_t h as two contiguous tensors
        gat_forward=gat_forward,
        gat_backward=gat_backward,
        gatv2_forward=gatv2_forward,
        gatv2_backward=gatv2_backward,
    )


@functools.cache
def _cpp_adapter(module: ModuleType) -> SimpleNamespace:
    """The compiled module: per-edge tensors in CSR order, ``lse`` ``[N_t, H]`` saved.

    The dropout mask is gathered into CSR order once per forward (read sequentially by the
    destination passes); ``alpha`` is computed, and put back into the user's order, only when
    the caller asks for it; the gradient of the edge scores comes back in CSR order and is
    put into the user's order here.
    """

    def sorted_mask(csr: EdgeCSR, drop: AttentionDropout | None) -> Tensor | None:
        return None if drop is None else drop.mask.index_select(0, csr.perm)

    def to_user_order(csr: EdgeCSR, sorted_rows: Tensor) -> Tensor:
        return torch.empty_like(sorted_rows).index_copy_(0, csr.perm, sorted_rows)

    def gat_forward(csr, ss, sd, es, wh, slope, drop, need_alpha):
        mask = sorted_mask(csr, drop)
        out, lse, alpha = module.gat_forward(
            *csr.astuple()[:3], ss, sd, es, wh, slope, mask, _keep_prob(drop), need_alpha
        )
        alpha = to_user_order(csr, alpha) if need_alpha else None
        return out, alpha, (lse, mask)

    def gat_backward(csr, ss, sd, es, wh, slope, keep_prob, saved, gout, galpha):
        lse, mask = saved
        gss, gsd, dpre, gwh = module.gat_backward(
            *csr.astuple(), ss, sd, es, wh, slope, mask, keep_prob, lse, gout, galpha
        )
        return gss, gsd, (to_user_order(csr, dpre) if es is not None else None), gwh

    def gatv2_forward(csr, xs, xt, xe, att, slope, drop, vs, need_alpha, pair=False):
        mask = sorted_mask(csr, drop)
        out, lse, alpha = module.gatv2_forward(
            *csr.astuple()[:3], xs, xt, xe, att, slope, mask, _keep_prob(drop), vs, need_alpha,
            pair,
        )  # fmt: skip
        alpha = to_user_order(csr, alpha) if need_alpha else None
        return out, alpha, (lse, mask)

    def gatv2_backward(
        csr, xs, xt, xe, att, slope, keep_prob, saved, gout, galpha, need_gxe, vs, pair=False
    ):
        lse, mask = saved
        gxs, gxt, gxe, gatt, gvs, gpair = module.gatv2_backward(
            *csr.astuple(), xs, xt, xe, att, slope, mask, keep_prob, lse, gout, galpha,
            need_gxe, vs, pair,
        )  # fmt: skip
        if pair:  # gxs, gxt are the halves of gpair [N, 2, H, C]
            gxs, gxt = gpair, None
        return gxs, gxt, (gxe if need_gxe else None), gatt, (gvs if vs is not None else None)

    return SimpleNamespace(
        name="cpp",
        pair_layout=True,  # GATv2 reads W_s h and W_t h as the halves of one [N, 2, H, C]
        gat_forward=gat_forward,
        gat_backward=gat_backward,
        gatv2_forward=gatv2_forward,
        gatv2_backward=gatv2_backward,
    )


@functools.cache
def _triton_kernels() -> Any:
    if importlib.util.find_spec("triton") is None:
        return None
    from gatkit.ops import fused_triton

    return _scale_kernels(fused_triton)


_CHUNKED = _scale_kernels(fused_chunked)


def kernels_for(device: torch.device, dtype: torch.dtype) -> Any | None:
    """The kernel set the current backend uses for tensors on ``device``; ``None`` = reference."""
    name = get_backend()
    if name == "reference":
        return None
    if name == "chunked":
        return _CHUNKED
    if name == "cpp":
        module = cpp_kernels()
        if module is None:
            raise RuntimeError("backend 'cpp' was chosen but the C++ extension is unavailable")
        return _cpp_adapter(module)
    if name == "triton":
        kernels = _triton_kernels()
        if kernels is None:
            raise RuntimeError("backend 'triton' was chosen but triton is not installed")
        return kernels
    # "auto" / "fused"
    if device.type == "cpu" and dtype in (torch.float32, torch.float64):
        module = cpp_kernels()
        return _CHUNKED if module is None else _cpp_adapter(module)
    if device.type == "cuda":
        kernels = _triton_kernels()
        if kernels is not None:
            announce_once("fused attention on CUDA runs the Triton kernels")
            return kernels
        announce_once("fused attention on CUDA runs the chunked PyTorch kernels (no triton)")
    return _CHUNKED


def _c(t: Tensor | None) -> Tensor | None:
    return None if t is None else t.contiguous()


class _GATAttention(torch.autograd.Function):
    @staticmethod
    def forward(ctx, kernels, csr, ss, sd, es, wh, slope, drop, need_alpha):
        ss, sd, es, wh = _c(ss), _c(sd), _c(es), _c(wh)
        out, alpha, saved = kernels.gat_forward(csr, ss, sd, es, wh, slope, drop, need_alpha)
        ctx.save_for_backward(ss, sd, es, wh, *saved)
        ctx.kernels, ctx.csr, ctx.slope, ctx.keep_prob = kernels, csr, slope, _keep_prob(drop)
        ctx.set_materialize_grads(False)
        return (out, alpha) if need_alpha else out

    @staticmethod
    @once_differentiable
    def backward(ctx, gout, galpha=None):
        ss, sd, es, wh, *saved = ctx.saved_tensors
        if gout is None:
            gout = torch.zeros((sd.size(0), *wh.shape[1:]), dtype=wh.dtype, device=wh.device)
        gss, gsd, ges, gwh = ctx.kernels.gat_backward(
            ctx.csr, ss, sd, es, wh, ctx.slope, ctx.keep_prob, tuple(saved), gout.contiguous(),
            _c(galpha),
        )  # fmt: skip
        return None, None, gss, gsd, (ges if es is not None else None), gwh, None, None, None


class _GATv2Attention(torch.autograd.Function):
    """GATv2's fused attention; ``xs``, ``xt`` given apart, or as the halves of ``pair``.

    With ``pair`` ``[N, 2, H, C]`` (``xs`` and ``xt`` ``None``): kernels with the pair layout
    (``pair_layout``) read the halves in place and write their gradients into one
    ``[N, 2, H, C]`` tensor, which is the gradient of ``pair``; other kernels get contiguous
    copies of the halves.
    """

    @staticmethod
    def forward(
        ctx, kernels, csr, xs, xt, att, edge_attr, edge_weight, slope, drop, vs, need, pair
    ):
        xs, xt = _halves(kernels, pair) if pair is not None else (_c(xs), _c(xt))
        att, vs = _c(att), _c(vs)
        xe = _edge_projection(edge_attr, edge_weight, xs.shape[1:])  # [E, H, C], not saved
        layout = {"pair": True} if pair is not None and kernels.pair_layout else {}
        out, alpha, saved = kernels.gatv2_forward(
            csr, xs, xt, xe, att, slope, drop, vs, need, **layout
        )
        inputs = (pair, None) if pair is not None else (xs, xt)
        ctx.save_for_backward(*inputs, att, edge_attr, edge_weight, vs, *saved)
        ctx.kernels, ctx.csr, ctx.slope, ctx.keep_prob = kernels, csr, slope, _keep_prob(drop)
        ctx.paired = pair is not None
        ctx.set_materialize_grads(False)
        return (out, alpha) if need else out

    @staticmethod
    @once_differentiable
    def backward(ctx, gout, galpha=None):
        xs, xt, att, edge_attr, edge_weight, vs, *saved = ctx.saved_tensors
        kernels = ctx.kernels
        if ctx.paired:
            pair = xs
            xs, xt = _halves(kernels, pair)
        if gout is None:
            gout = torch.zeros((xt.size(0), *xs.shape[1:]), dtype=xs.dtype, device=xs.device)
        xe = _edge_projection(edge_attr, edge_weight, xs.shape[1:])  # recomputed
        need_gxe = xe is not None and (ctx.needs_input_grad[5] or ctx.needs_input_grad[6])
        layout = {"pair": True} if ctx.paired and kernels.pair_layout else {}
        gxs, gxt, gxe, gatt, gvs = kernels.gatv2_backward(
            ctx.csr, xs, xt, xe, att, ctx.slope, ctx.keep_prob, tuple(saved), gout.contiguous(),
            _c(galpha), need_gxe, vs, **layout,
        )  # fmt: skip
        g_attr = g_weight = None
        if need_gxe:
            gxe = gxe.reshape(gxe.size(0), edge_weight.size(0))  # [E, H C]
            if ctx.needs_input_grad[5]:
                g_attr = gxe @ edge_weight  # [E, D]
            if ctx.needs_input_grad[6]:
                g_weight = gxe.t() @ edge_attr  # [H C, D]
        if ctx.paired:
            gpair = gxs if layout else torch.stack([gxs, gxt], dim=1)  # [N, 2, H, C]
            return None, None, None, None, gatt, g_attr, g_weight, None, None, gvs, None, gpair
        return None, None, gxs, gxt, gatt, g_attr, g_weight, None, None, gvs, None, None


def _halves(kernels: Any, pair: Tensor) -> tuple[Tensor, Tensor]:
    """``pair[:, 0]``, ``pair[:, 1]``: views for kernels with the pair layout, else copies."""
    if pair.dim() != 4 or pair.size(1) != 2:
        raise ValueError(f"pair must be [N, 2, H, C], got {list(pair.shape)}")
    if kernels.pair_layout:
        pair = pair.contiguous()
        return pair[:, 0], pair[:, 1]
    return pair[:, 0].contiguous(), pair[:, 1].contiguous()


def _edge_projection(edge_attr: Tensor | None, weight: Tensor | None, head_shape) -> Tensor | None:
    """:math:`\\mathbf{W}_e \\mathbf{e}` as ``[E, H, C]``, or ``None`` without edge features."""
    if edge_attr is None or weight is None:
        return None
    return (edge_attr @ weight.t()).view(-1, *head_shape).contiguous()


def gat_attention(
    kernels: Any,
    csr: EdgeCSR,
    score_src: Tensor,
    score_dst: Tensor,
    edge_score: Tensor | None,
    values: Tensor,
    negative_slope: float,
    dropout: AttentionDropout | None = None,
    need_attention: bool = True,
) -> tuple[Tensor, Tensor | None]:
    """Fused GAT attention and aggregation.

    Args:
        kernels: a kernel set from :func:`kernels_for`.
        csr: sorted views of the edge list (:func:`gatkit.ops.csr.csr_of`).
        score_src: ``[N_s, H]`` :math:`s_j = \\mathbf{a}_s^\\top \\mathbf{W}\\mathbf{h}_j`.
        score_dst: ``[N_t, H]`` :math:`t_i = \\mathbf{a}_t^\\top \\mathbf{W}\\mathbf{h}_i`.
        edge_score: ``[E, H]`` :math:`\\epsilon_{ij}` in the user's edge order, or ``None``.
        values: ``[N_s, H, C]`` :math:`\\mathbf{W}\\mathbf{h}_j`.
        negative_slope: LeakyReLU slope.
        dropout: the attention dropout from :func:`attention_dropout`, or ``None``.
        need_attention: also return :math:`\\alpha` (costs an ``[E, H]`` tensor).

    Returns:
        ``(out [N_t, H, C], alpha [E, H] or None)``; ``alpha`` is before dropout, in the
        user's order, and ``None`` unless ``need_attention``.
    """
    result = _GATAttention.apply(
        kernels, csr, score_src, score_dst, edge_score, values, negative_slope, dropout,
        need_attention,
    )  # fmt: skip
    return result if need_attention else (result, None)


def gatv2_attention(
    kernels: Any,
    csr: EdgeCSR,
    x_src: Tensor | None,
    x_dst: Tensor | None,
    att: Tensor,
    edge_attr: Tensor | None,
    edge_weight: Tensor | None,
    negative_slope: float,
    dropout: AttentionDropout | None = None,
    values: Tensor | None = None,
    need_attention: bool = True,
    pair: Tensor | None = None,
) -> tuple[Tensor, Tensor | None]:
    """Fused GATv2 attention and aggregation.

    Args:
        kernels: a kernel set from :func:`kernels_for`.
        csr: sorted views of the edge list (:func:`gatkit.ops.csr.csr_of`).
        x_src: ``[N_s, H, C]`` :math:`\\mathbf{W}_s\\mathbf{h}_j` (also the messages).
        x_dst: ``[N_t, H, C]`` :math:`\\mathbf{W}_t\\mathbf{h}_i`.
        att: ``[H, C]`` :math:`\\mathbf{a}`.
        edge_attr: ``[E, D]`` edge features in the user's order, or ``None``.
        edge_weight: ``[H C, D]`` :math:`\\mathbf{W}_e` (no bias), or ``None``.
        negative_slope: LeakyReLU slope.
        dropout: the attention dropout from :func:`attention_dropout`, or ``None``.
        values: ``[N_s, H, C]`` messages :math:`\\mathbf{v}_j` when they are not
            :math:`\\mathbf{x}^s_j` (message dropout), or ``None``.
        need_attention: also return :math:`\\alpha` (costs an ``[E, H]`` tensor).
        pair: ``[N, 2, H, C]`` with ``pair[:, 0]`` :math:`\\mathbf{W}_s\\mathbf{h}` and
            ``pair[:, 1]`` :math:`\\mathbf{W}_t\\mathbf{h}` of one node set, the output of
            one matrix product with both maps (``x_src`` and ``x_dst`` are then ``None``):
            its gradient comes back as one tensor, so the product's backward is one
            product too.

    Returns:
        ``(out [N_t, H, C], alpha [E, H] or None)``; ``alpha`` is before dropout, in the
        user's order, and ``None`` unless ``need_attention``.
    """
    apart = x_src is not None and x_dst is not None
    if (pair is None and not apart) or (
        pair is not None and (x_src is not None or x_dst is not None)
    ):
        raise ValueError("gatv2_attention takes x_src and x_dst, or pair alone")
    result = _GATv2Attention.apply(
        kernels, csr, x_src, x_dst, att, edge_attr, edge_weight, negative_slope, dropout,
        values, need_attention, pair,
    )  # fmt: skip
    return result if need_attention else (result, None)
