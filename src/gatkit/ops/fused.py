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

with :math:`m_i` the running maximum of the logits, :math:`d_{ij}` the attention-dropout
scale (:math:`0` or :math:`1/(1-p)`, exactly ``F.dropout`` applied to :math:`\alpha`) and
:math:`\mathbf{v} = \mathbf{W}\mathbf{h}` (GAT) or :math:`\mathbf{x}^s` (GATv2; a separate
:math:`\mathbf{v}` when the messages are dropped out and the scores are not).

The backward pass keeps only node tensors and ``[E, H]`` tensors (:math:`\alpha`, the
dropout scale, GAT's edge score) and recomputes the rest per segment:

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
import importlib.util
import os
from collections.abc import Iterator
from types import ModuleType, SimpleNamespace
from typing import Any

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

from gatkit.ops import fused_chunked
from gatkit.ops.csr import EdgeCSR
from gatkit.ops.fused_cpu import announce_once, cpp_kernels

__all__ = [
    "BACKENDS",
    "attention_dropout_scale",
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


def _cpp_adapter(module: ModuleType) -> SimpleNamespace:
    """The compiled module behind the kernel signature of :mod:`gatkit.ops.fused_chunked`."""

    def gat_forward(csr, ss, sd, es, wh, slope, scale):
        return tuple(module.gat_forward(*csr.astuple()[:3], ss, sd, es, wh, slope, scale))

    def gat_backward(csr, ss, sd, es, wh, slope, scale, alpha, gout, galpha):
        return tuple(
            module.gat_backward(*csr.astuple(), ss, sd, es, wh, slope, scale, alpha, gout, galpha)
        )

    def gatv2_forward(csr, xs, xt, xe, att, slope, scale, vs=None):
        return tuple(module.gatv2_forward(*csr.astuple()[:3], xs, xt, xe, att, slope, scale, vs))

    def gatv2_backward(csr, xs, xt, xe, att, slope, scale, alpha, gout, galpha, need_gxe, vs=None):
        gxs, gxt, gxe, gatt, gvs = module.gatv2_backward(
            *csr.astuple(), xs, xt, xe, att, slope, scale, alpha, gout, galpha, need_gxe, vs
        )
        return gxs, gxt, (gxe if need_gxe else None), gatt, (gvs if vs is not None else None)

    return SimpleNamespace(
        name="cpp",
        gat_forward=gat_forward,
        gat_backward=gat_backward,
        gatv2_forward=gatv2_forward,
        gatv2_backward=gatv2_backward,
    )


def _triton_kernels() -> Any:
    if importlib.util.find_spec("triton") is None:
        return None
    from gatkit.ops import fused_triton

    return fused_triton


def kernels_for(device: torch.device, dtype: torch.dtype) -> Any | None:
    """The kernel set the current backend uses for tensors on ``device``; ``None`` = reference."""
    name = get_backend()
    if name == "reference":
        return None
    if name == "chunked":
        return fused_chunked
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
        return fused_chunked if module is None else _cpp_adapter(module)
    if device.type == "cuda":
        kernels = _triton_kernels()
        if kernels is not None:
            announce_once("fused attention on CUDA runs the Triton kernels")
            return kernels
        announce_once("fused attention on CUDA runs the chunked PyTorch kernels (no triton)")
    return fused_chunked


def attention_dropout_scale(
    num_edges: int, heads: int, p: float, training: bool, like: Tensor
) -> Tensor | None:
    """``[E, H]`` dropout scale ``d`` with ``alpha * d == F.dropout(alpha, p)``, or ``None``.

    It draws the mask exactly as ``F.dropout`` on an ``[E, H]`` tensor does, so with the same
    random state the fused and the reference paths drop the same coefficients.
    """
    if not training or p == 0.0:
        return None
    ones = like.new_ones((num_edges, heads))
    return torch.nn.functional.dropout(ones, p=p, training=True)


def _c(t: Tensor | None) -> Tensor | None:
    return None if t is None else t.contiguous()


class _GATAttention(torch.autograd.Function):
    @staticmethod
    def forward(ctx, kernels, csr, ss, sd, es, wh, slope, scale):
        ss, sd, es, wh, scale = _c(ss), _c(sd), _c(es), _c(wh), _c(scale)
        out, alpha = kernels.gat_forward(csr, ss, sd, es, wh, slope, scale)
        ctx.save_for_backward(ss, sd, es, wh, scale, alpha)
        ctx.kernels, ctx.csr, ctx.slope = kernels, csr, slope
        ctx.set_materialize_grads(False)
        return out, alpha

    @staticmethod
    @once_differentiable
    def backward(ctx, gout, galpha):
        ss, sd, es, wh, scale, alpha = ctx.saved_tensors
        if gout is None:
            gout = torch.zeros((sd.size(0), *wh.shape[1:]), dtype=wh.dtype, device=wh.device)
        gss, gsd, ges, gwh = ctx.kernels.gat_backward(
            ctx.csr, ss, sd, es, wh, ctx.slope, scale, alpha, gout.contiguous(), _c(galpha)
        )
        return None, None, gss, gsd, (ges if es is not None else None), gwh, None, None


class _GATv2Attention(torch.autograd.Function):
    @staticmethod
    def forward(ctx, kernels, csr, xs, xt, att, edge_attr, edge_weight, slope, scale, vs):
        xs, xt, att, scale, vs = _c(xs), _c(xt), _c(att), _c(scale), _c(vs)
        xe = _edge_projection(edge_attr, edge_weight, xs.shape[1:])  # [E, H, C], not saved
        out, alpha = kernels.gatv2_forward(csr, xs, xt, xe, att, slope, scale, vs)
        ctx.save_for_backward(xs, xt, att, edge_attr, edge_weight, scale, alpha, vs)
        ctx.kernels, ctx.csr, ctx.slope = kernels, csr, slope
        ctx.set_materialize_grads(False)
        return out, alpha

    @staticmethod
    @once_differentiable
    def backward(ctx, gout, galpha):
        xs, xt, att, edge_attr, edge_weight, scale, alpha, vs = ctx.saved_tensors
        if gout is None:
            gout = torch.zeros((xt.size(0), *xs.shape[1:]), dtype=xs.dtype, device=xs.device)
        xe = _edge_projection(edge_attr, edge_weight, xs.shape[1:])  # recomputed
        need_gxe = xe is not None and (ctx.needs_input_grad[5] or ctx.needs_input_grad[6])
        gxs, gxt, gxe, gatt, gvs = ctx.kernels.gatv2_backward(
            ctx.csr,
            xs,
            xt,
            xe,
            att,
            ctx.slope,
            scale,
            alpha,
            gout.contiguous(),
            _c(galpha),
            need_gxe,
            vs,
        )
        g_attr = g_weight = None
        if need_gxe:
            gxe = gxe.reshape(gxe.size(0), edge_weight.size(0))  # [E, H C]
            if ctx.needs_input_grad[5]:
                g_attr = gxe @ edge_weight  # [E, D]
            if ctx.needs_input_grad[6]:
                g_weight = gxe.t() @ edge_attr  # [H C, D]
        return None, None, gxs, gxt, gatt, g_attr, g_weight, None, None, gvs


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
    dropout_scale: Tensor | None = None,
) -> tuple[Tensor, Tensor]:
    """Fused GAT attention and aggregation.

    Args:
        kernels: a kernel set from :func:`kernels_for`.
        csr: sorted views of the edge list (:func:`gatkit.ops.csr.csr_of`).
        score_src: ``[N_s, H]`` :math:`s_j = \\mathbf{a}_s^\\top \\mathbf{W}\\mathbf{h}_j`.
        score_dst: ``[N_t, H]`` :math:`t_i = \\mathbf{a}_t^\\top \\mathbf{W}\\mathbf{h}_i`.
        edge_score: ``[E, H]`` :math:`\\epsilon_{ij}` in the user's edge order, or ``None``.
        values: ``[N_s, H, C]`` :math:`\\mathbf{W}\\mathbf{h}_j`.
        negative_slope: LeakyReLU slope.
        dropout_scale: ``[E, H]`` from :func:`attention_dropout_scale`, or ``None``.

    Returns:
        ``(out [N_t, H, C], alpha [E, H])``; ``alpha`` is before dropout, in the user's order.
    """
    return _GATAttention.apply(
        kernels, csr, score_src, score_dst, edge_score, values, negative_slope, dropout_scale
    )


def gatv2_attention(
    kernels: Any,
    csr: EdgeCSR,
    x_src: Tensor,
    x_dst: Tensor,
    att: Tensor,
    edge_attr: Tensor | None,
    edge_weight: Tensor | None,
    negative_slope: float,
    dropout_scale: Tensor | None = None,
    values: Tensor | None = None,
) -> tuple[Tensor, Tensor]:
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
        dropout_scale: ``[E, H]`` from :func:`attention_dropout_scale`, or ``None``.
        values: ``[N_s, H, C]`` messages :math:`\\mathbf{v}_j` when they are not
            :math:`\\mathbf{x}^s_j` (message dropout), or ``None``.

    Returns:
        ``(out [N_t, H, C], alpha [E, H])``; ``alpha`` is before dropout, in the user's order.
    """
    return _GATv2Attention.apply(
        kernels,
        csr,
        x_src,
        x_dst,
        att,
        edge_attr,
        edge_weight,
        negative_slope,
        dropout_scale,
        values,
    )
