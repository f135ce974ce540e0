r"""Fused attention kernels in plain PyTorch, one chunk of destinations at a time.

The portable fallback of the C++ kernels (same signatures, same equations; see
:mod:`gatkit.ops.fused`). Destinations are cut into chunks of whole in-neighbourhoods of
about ``chunk_edges`` edges, so the softmax of a chunk is complete, and the
``[E_chunk, H, C]`` temporaries live for one chunk only. Source-side gradients are summed
with ``index_add_`` into full-size node tensors.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import Tensor

from gatkit.ops.csr import EdgeCSR

__all__ = ["gat_backward", "gat_forward", "gatv2_backward", "gatv2_forward"]

#: Edges per chunk: the ``[E_chunk, H, C]`` temporaries stay a few MB each.
CHUNK_EDGES = 1 << 16


def _chunks(csr: EdgeCSR) -> Iterator[tuple[int, int, int, int, Tensor]]:
    """``(r0, r1, p0, p1, local_dst)`` for consecutive row blocks of about CHUNK_EDGES edges.

    ``local_dst`` ``[p1 - p0]`` is each sorted edge's destination minus ``r0``.
    """
    rowptr = csr.rowptr
    num_rows, num_edges = csr.num_dst, csr.num_edges
    if num_rows == 0:
        return
    cuts: list[int] = []
    if num_edges > CHUNK_EDGES:
        targets = torch.arange(CHUNK_EDGES, num_edges, CHUNK_EDGES, device=rowptr.device)
        cuts = torch.searchsorted(rowptr, targets, right=True).clamp(max=num_rows).tolist()
    bounds = sorted({0, *cuts, num_rows})
    ptr = rowptr.tolist() if num_rows < 4096 else None
    for r0, r1 in zip(bounds[:-1], bounds[1:], strict=True):
        if r1 <= r0:
            continue
        p0 = ptr[r0] if ptr else int(rowptr[r0])
        p1 = ptr[r1] if ptr else int(rowptr[r1])
        degree = rowptr[r0 + 1 : r1 + 1] - rowptr[r0:r1]  # [r1 - r0]
        local = torch.repeat_interleave(torch.arange(r1 - r0, device=rowptr.device), degree)
        yield r0, r1, p0, p1, local


def _softmax(logits: Tensor, local: Tensor, rows: int) -> Tensor:
    """Stable softmax of ``logits`` ``[E_c, H]`` over equal ``local`` destinations."""
    index = local.unsqueeze(-1).expand_as(logits)
    shift = logits.new_full((rows, logits.size(1)), float("-inf"))
    shift = shift.scatter_reduce(0, index, logits, reduce="amax", include_self=True)
    w = (logits - shift.index_select(0, local)).exp()  # [E_c, H]
    total = logits.new_zeros((rows, logits.size(1))).index_add_(0, local, w)
    return w / total.index_select(0, local)


def _leaky(v: Tensor, slope: float) -> Tensor:
    return torch.where(v > 0, v, v * slope)


def _leaky_grad(v: Tensor, slope: float) -> Tensor:
    return torch.where(v > 0, torch.ones_like(v), torch.full_like(v, slope))


def _softmax_grad(alpha: Tensor, g: Tensor, local: Tensor, rows: int) -> Tensor:
    r""":math:`\partial l_e = \alpha_e (g_e - \sum_k \alpha_k g_k)` over each destination."""
    total = alpha.new_zeros((rows, alpha.size(1))).index_add_(0, local, alpha * g)
    return alpha * (g - total.index_select(0, local))


def _upstream(gout_rows, v_src, local, eids, scale, galpha) -> Tensor:
    """``g_e = d_e <gout_i, v_j> + galpha_e`` ``[E_c, H]``."""
    g = (gout_rows.index_select(0, local) * v_src).sum(-1)
    if scale is not None:
        g = g * scale.index_select(0, eids)
    if galpha is not None:
        g = g + galpha.index_select(0, eids)
    return g


def gat_forward(csr, ss, sd, es, wh, slope, scale):
    """GAT attention forward; see :func:`gatkit.ops.fused.gat_attention`."""
    Nt, (H, C) = sd.size(0), wh.shape[1:]
    out = wh.new_zeros((Nt, H, C))
    alpha = wh.new_empty((csr.num_edges, H))
    for r0, r1, p0, p1, local in _chunks(csr):
        src, eids = csr.col[p0:p1], csr.perm[p0:p1]
        pre = ss.index_select(0, src) + sd[r0:r1].index_select(0, local)  # [E_c, H]
        if es is not None:
            pre = pre + es.index_select(0, eids)
        a = _softmax(_leaky(pre, slope), local, r1 - r0)  # [E_c, H]
        alpha[eids] = a
        if scale is not None:
            a = a * scale.index_select(0, eids)
        out[r0:r1].index_add_(0, local, a.unsqueeze(-1) * wh.index_select(0, src))
    return out, alpha


def gat_backward(csr, ss, sd, es, wh, slope, scale, alpha, gout, galpha):
    """GAT attention backward: ``(grad ss, grad sd, grad es [E, H], grad wh)``."""
    gss, gsd = torch.zeros_like(ss), torch.zeros_like(sd)
    gwh, dpre = torch.zeros_like(wh), torch.empty_like(alpha)
    for r0, r1, p0, p1, local in _chunks(csr):
        src, eids = csr.col[p0:p1], csr.perm[p0:p1]
        v = wh.index_select(0, src)  # [E_c, H, C]
        a = alpha.index_select(0, eids)  # [E_c, H]
        g = _upstream(gout[r0:r1], v, local, eids, scale, galpha)
        pre = ss.index_select(0, src) + sd[r0:r1].index_select(0, local)
        if es is not None:
            pre = pre + es.index_select(0, eids)
        dp = _softmax_grad(a, g, local, r1 - r0) * _leaky_grad(pre, slope)  # [E_c, H]
        dpre[eids] = dp
        gsd[r0:r1].index_add_(0, local, dp)
        gss.index_add_(0, src, dp)
        ad = a if scale is None else a * scale.index_select(0, eids)
        gwh.index_add_(0, src, ad.unsqueeze(-1) * gout[r0:r1].index_select(0, local))
    return gss, gsd, dpre, gwh


def _gatv2_hidden(csr, xs, xt, xe, r0, r1, p0, p1, local):
    """``z = xs[j] + xt[i] (+ xe[e])`` ``[E_c, H, C]`` of one chunk, and its sources/ids."""
    src, eids = csr.col[p0:p1], csr.perm[p0:p1]
    z = xs.index_select(0, src) + xt[r0:r1].index_select(0, local)
    if xe is not None:
        z = z + xe.index_select(0, eids)
    return z, src, eids


def gatv2_forward(csr, xs, xt, xe, att, slope, scale, vs=None):
    """GATv2 attention forward; see :func:`gatkit.ops.fused.gatv2_attention`.

    ``vs`` ``[N_s, H, C]``: the messages when they differ from ``xs`` (``None``: ``xs``).
    """
    Nt, (H, C) = xt.size(0), xs.shape[1:]
    values = xs if vs is None else vs
    out = xs.new_zeros((Nt, H, C))
    alpha = xs.new_empty((csr.num_edges, H))
    for r0, r1, p0, p1, local in _chunks(csr):
        z, src, eids = _gatv2_hidden(csr, xs, xt, xe, r0, r1, p0, p1, local)
        a = _softmax((_leaky(z, slope) * att).sum(-1), local, r1 - r0)  # [E_c, H]
        alpha[eids] = a
        if scale is not None:
            a = a * scale.index_select(0, eids)
        out[r0:r1].index_add_(0, local, a.unsqueeze(-1) * values.index_select(0, src))
    return out, alpha


def gatv2_backward(csr, xs, xt, xe, att, slope, scale, alpha, gout, galpha, need_gxe, vs=None):
    """GATv2 attention backward: ``(grad xs, grad xt, grad xe or None, grad att, grad vs)``.

    ``grad vs`` is ``None`` when ``vs`` is (the message gradient is then part of ``grad xs``).
    """
    values = xs if vs is None else vs
    gxs, gxt, gatt = torch.zeros_like(xs), torch.zeros_like(xt), torch.zeros_like(att)
    gvs = None if vs is None else torch.zeros_like(vs)
    gxe = xs.new_empty((csr.num_edges, *xs.shape[1:])) if need_gxe else None
    for r0, r1, p0, p1, local in _chunks(csr):
        z, src, eids = _gatv2_hidden(csr, xs, xt, xe, r0, r1, p0, p1, local)
        a = alpha.index_select(0, eids)  # [E_c, H]
        g = _upstream(gout[r0:r1], values.index_select(0, src), local, eids, scale, galpha)
        dl = _softmax_grad(a, g, local, r1 - r0)  # [E_c, H]
        gatt += (dl.unsqueeze(-1) * _leaky(z, slope)).sum(0)
        dz = dl.unsqueeze(-1) * att * _leaky_grad(z, slope)  # [E_c, H, C]
        gxt[r0:r1].index_add_(0, local, dz)
        if gxe is not None:
            gxe[eids] = dz
        ad = a if scale is None else a * scale.index_select(0, eids)
        gmessage = ad.unsqueeze(-1) * gout[r0:r1].index_select(0, local)  # [E_c, H, C]
        if gvs is None:
            gxs.index_add_(0, src, dz + gmessage)
        else:
            gxs.index_add_(0, src, dz)
            gvs.index_add_(0, src, gmessage)
    return gxs, gxt, gxe, gatt, gvs
