# ruff: noqa: N803 (kernel arguments keep the math names H, C and Triton's UPPER constexprs)
r"""Fused attention kernels in Triton (GPU; on CPU under ``TRITON_INTERPRET=1`` for tests).

Same signatures and equations as :mod:`gatkit.ops.fused_chunked` (see
:mod:`gatkit.ops.fused`). One program handles one destination :math:`i` and one head
:math:`h`; it walks the CSR segment of :math:`i` in blocks of ``BLOCK_E`` edges with an
online (running-maximum) softmax, so only ``[BLOCK_E, BLOCK_C]`` tiles ever exist. The
backward pass has a destination pass (softmax gradient, target-side and edge gradients)
and a source pass over the CSC (source-side gradients), so every output row is written by
one program: no atomics, deterministic results. GATv2's attention-vector gradient is summed
per destination row and reduced once at the end. Within a program, a value one loop stores
per edge and a later loop reads back goes to a buffer of its own, behind a barrier: the
threads of a program may hold an edge in different lanes in the two loops (overwriting in
place raced on an H200; the interpreter, being sequential, cannot show it).

The module imports :mod:`triton`; :mod:`gatkit.ops.fused` imports it only when it is used.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl
from torch import Tensor

from gatkit.ops.csr import EdgeCSR

__all__ = ["gat_backward", "gat_forward", "gatv2_backward", "gatv2_forward"]

LAUNCH = {"BLOCK_E": 16, "num_warps": 2}
"""Edges per block of a program's walk, and warps per program, of every kernel here
(``benchmarks/gpu_tune.py`` times the settings; results agree for any power of 2). On an
H200 (arxiv-sized graph, benchmark model), 16 edges and 2 warps took the training step from
28.2 to 21.3 ms (GAT) and 32.7 to 23.0 ms (GATv2) against 32 edges and 4 warps, inference
from 8.1 to 6.0 and 9.5 to 5.7 ms. One warp was 10% faster still, but its errors against
the chunked kernels were 3 to 7 times larger (float32 up to 9.6e-6, near the 1e-5
tolerance; float64 2.4e-14), where 2 warps kept those of 4 (1.4e-6, 3.5e-15)."""


@triton.jit
def _leaky(z, slope):
    return tl.where(z > 0, z, z * slope)


@triton.jit
def _leaky_grad(z, slope):
    return tl.where(z > 0, 1.0, slope)


# ------------------------------------------------------------------------------ GATv2 ----
@triton.jit
def _gatv2_fwd(
    rowptr, col, perm, xs, xt, xe, att, scale, vs, out, alpha,
    H, C, slope_ptr,
    HAS_XE: tl.constexpr, HAS_SCALE: tl.constexpr, HAS_VS: tl.constexpr,
    BLOCK_E: tl.constexpr, BLOCK_C: tl.constexpr,
):  # fmt: skip
    i = tl.program_id(0).to(tl.int64)
    h = tl.program_id(1).to(tl.int64)
    slope = tl.load(slope_ptr)  # in the data dtype (a Python float would be fp32)
    start = tl.load(rowptr + i)
    end = tl.load(rowptr + i + 1)
    cs = tl.arange(0, BLOCK_C)
    cmask = cs < C
    xt_i = tl.load(xt + (i * H + h) * C + cs, mask=cmask, other=0.0)  # [BC]
    a = tl.load(att + h * C + cs, mask=cmask, other=0.0)  # [BC]
    zero = tl.sum(xt_i * 0.0, axis=0)
    m = zero - float("inf")
    s = zero
    acc = xt_i * 0.0  # [BC]
    for p0 in range(start, end, BLOCK_E):
        ps = p0 + tl.arange(0, BLOCK_E)
        emask = ps < end
        j = tl.load(col + ps, mask=emask, other=0)
        e = tl.load(perm + ps, mask=emask, other=0)
        tile = emask[:, None] & cmask[None, :]
        v = tl.load(xs + (j[:, None] * H + h) * C + cs[None, :], mask=tile, other=0.0)
        z = v + xt_i[None, :]  # [BE, BC]
        if HAS_XE:
            z += tl.load(xe + (e[:, None] * H + h) * C + cs[None, :], mask=tile, other=0.0)
        logit = tl.sum(_leaky(z, slope) * a[None, :], axis=1)  # [BE]
        logit = tl.where(emask, logit, float("-inf"))
        tl.store(alpha + e * H + h, logit, mask=emask)
        m_new = tl.maximum(m, tl.max(logit, axis=0))
        r = tl.exp(m - m_new)
        w = tl.exp(logit - m_new)  # [BE]; 0 on masked lanes
        s = s * r + tl.sum(w, axis=0)
        if HAS_SCALE:
            w = w * tl.load(scale + e * H + h, mask=emask, other=0.0)
        if HAS_VS:  # messages other than xs (message dropout)
            v = tl.load(vs + (j[:, None] * H + h) * C + cs[None, :], mask=tile, other=0.0)
        acc = acc * r + tl.sum(w[:, None] * v, axis=0)
        m = m_new
    s_safe = tl.where(s > 0, s, 1.0)
    tl.store(out + (i * H + h) * C + cs, acc / s_safe, mask=cmask)
    tl.debug_barrier()  # the logits stored above may sit in other threads' lanes
    for p0 in range(start, end, BLOCK_E):
        ps = p0 + tl.arange(0, BLOCK_E)
        emask = ps < end
        e = tl.load(perm + ps, mask=emask, other=0)
        logit = tl.load(alpha + e * H + h, mask=emask, other=0.0)
        tl.store(alpha + e * H + h, tl.exp(logit - m) / s_safe, mask=emask)


@triton.jit
def _gatv2_bwd_dst(
    rowptr, col, perm, xs, xt, xe, att, scale, vs, alpha, gout, galpha,
    upstream, dlogit, gxt, gxe, gatt_rows,
    H, C, slope_ptr,
    HAS_XE: tl.constexpr, HAS_SCALE: tl.constexpr, HAS_GALPHA: tl.constexpr,
    NEED_GXE: tl.constexpr, BLOCK_E: tl.constexpr, BLOCK_C: tl.constexpr,
):  # fmt: skip
    i = tl.program_id(0).to(tl.int64)
    h = tl.program_id(1).to(tl.int64)
    slope = tl.load(slope_ptr)  # in the data dtype (a Python float would be fp32)
    start = tl.load(rowptr + i)
    end = tl.load(rowptr + i + 1)
    cs = tl.arange(0, BLOCK_C)
    cmask = cs < C
    g = tl.load(gout + (i * H + h) * C + cs, mask=cmask, other=0.0)  # [BC]
    xt_i = tl.load(xt + (i * H + h) * C + cs, mask=cmask, other=0.0)
    a = tl.load(att + h * C + cs, mask=cmask, other=0.0)
    dot_sum = tl.sum(g * 0.0, axis=0)
    for p0 in range(start, end, BLOCK_E):  # g_e = d_e <gout_i, v_j> + galpha_e
        ps = p0 + tl.arange(0, BLOCK_E)
        emask = ps < end
        j = tl.load(col + ps, mask=emask, other=0)
        e = tl.load(perm + ps, mask=emask, other=0)
        tile = emask[:, None] & cmask[None, :]
        v = tl.load(vs + (j[:, None] * H + h) * C + cs[None, :], mask=tile, other=0.0)
        d = tl.sum(v * g[None, :], axis=1)
        if HAS_SCALE:
            d = d * tl.load(scale + e * H + h, mask=emask, other=0.0)
        if HAS_GALPHA:
            d += tl.load(galpha + e * H + h, mask=emask, other=0.0)
        al = tl.load(alpha + e * H + h, mask=emask, other=0.0)
        tl.store(upstream + e * H + h, d, mask=emask)
        dot_sum += tl.sum(al * d, axis=0)
    tl.debug_barrier()  # upstream stored above is read back below, possibly by other threads
    gxt_acc = g * 0.0
    gatt_acc = g * 0.0
    for p0 in range(start, end, BLOCK_E):  # dl_e = alpha_e (g_e - sum_k alpha_k g_k)
        ps = p0 + tl.arange(0, BLOCK_E)
        emask = ps < end
        j = tl.load(col + ps, mask=emask, other=0)
        e = tl.load(perm + ps, mask=emask, other=0)
        tile = emask[:, None] & cmask[None, :]
        al = tl.load(alpha + e * H + h, mask=emask, other=0.0)
        d = tl.load(upstream + e * H + h, mask=emask, other=0.0)
        dl = al * (d - dot_sum)
        tl.store(dlogit + e * H + h, dl, mask=emask)
        z = tl.load(xs + (j[:, None] * H + h) * C + cs[None, :], mask=tile, other=0.0)
        z += xt_i[None, :]
        if HAS_XE:
            z += tl.load(xe + (e[:, None] * H + h) * C + cs[None, :], mask=tile, other=0.0)
        dz = dl[:, None] * a[None, :] * _leaky_grad(z, slope)  # [BE, BC]
        dz = tl.where(tile, dz, 0.0)
        gatt_acc += tl.sum(tl.where(tile, dl[:, None] * _leaky(z, slope), 0.0), axis=0)
        gxt_acc += tl.sum(dz, axis=0)
        if NEED_GXE:
            tl.store(gxe + (e[:, None] * H + h) * C + cs[None, :], dz, mask=tile)
    tl.store(gxt + (i * H + h) * C + cs, gxt_acc, mask=cmask)
    tl.store(gatt_rows + (i * H + h) * C + cs, gatt_acc, mask=cmask)


@triton.jit
def _gatv2_bwd_src(
    colptr, row, cperm, xs, xt, xe, att, scale, alpha, gout, dlogit, gxs, gvs,
    H, C, slope_ptr,
    HAS_XE: tl.constexpr, HAS_SCALE: tl.constexpr, HAS_VS: tl.constexpr,
    BLOCK_E: tl.constexpr, BLOCK_C: tl.constexpr,
):  # fmt: skip
    j = tl.program_id(0).to(tl.int64)
    h = tl.program_id(1).to(tl.int64)
    slope = tl.load(slope_ptr)  # in the data dtype (a Python float would be fp32)
    start = tl.load(colptr + j)
    end = tl.load(colptr + j + 1)
    cs = tl.arange(0, BLOCK_C)
    cmask = cs < C
    xs_j = tl.load(xs + (j * H + h) * C + cs, mask=cmask, other=0.0)
    a = tl.load(att + h * C + cs, mask=cmask, other=0.0)
    acc = xs_j * 0.0
    acc_v = xs_j * 0.0  # message part when the messages are separate values
    for q0 in range(start, end, BLOCK_E):  # gxs_j = sum_e alpha_e d_e gout_i + dz_e
        qs = q0 + tl.arange(0, BLOCK_E)
        emask = qs < end
        i = tl.load(row + qs, mask=emask, other=0)
        e = tl.load(cperm + qs, mask=emask, other=0)
        tile = emask[:, None] & cmask[None, :]
        g = tl.load(gout + (i[:, None] * H + h) * C + cs[None, :], mask=tile, other=0.0)
        z = tl.load(xt + (i[:, None] * H + h) * C + cs[None, :], mask=tile, other=0.0)
        z += xs_j[None, :]
        if HAS_XE:
            z += tl.load(xe + (e[:, None] * H + h) * C + cs[None, :], mask=tile, other=0.0)
        al = tl.load(alpha + e * H + h, mask=emask, other=0.0)
        if HAS_SCALE:
            al = al * tl.load(scale + e * H + h, mask=emask, other=0.0)
        dl = tl.load(dlogit + e * H + h, mask=emask, other=0.0)
        score_term = dl[:, None] * a[None, :] * _leaky_grad(z, slope)
        if HAS_VS:
            acc += tl.sum(tl.where(tile, score_term, 0.0), axis=0)
            acc_v += tl.sum(tl.where(tile, al[:, None] * g, 0.0), axis=0)
        else:
            acc += tl.sum(tl.where(tile, al[:, None] * g + score_term, 0.0), axis=0)
    tl.store(gxs + (j * H + h) * C + cs, acc, mask=cmask)
    if HAS_VS:
        tl.store(gvs + (j * H + h) * C + cs, acc_v, mask=cmask)


# -------------------------------------------------------------------------------- GAT ----
@triton.jit
def _gat_fwd(
    rowptr, col, perm, ss, sd, es, wh, scale, out, alpha,
    H, C, slope_ptr,
    HAS_ES: tl.constexpr, HAS_SCALE: tl.constexpr, BLOCK_E: tl.constexpr, BLOCK_C: tl.constexpr,
):  # fmt: skip
    i = tl.program_id(0).to(tl.int64)
    h = tl.program_id(1).to(tl.int64)
    slope = tl.load(slope_ptr)  # in the data dtype (a Python float would be fp32)
    start = tl.load(rowptr + i)
    end = tl.load(rowptr + i + 1)
    cs = tl.arange(0, BLOCK_C)
    cmask = cs < C
    sd_i = tl.load(sd + i * H + h)
    zero = sd_i * 0.0
    m = zero - float("inf")
    s = zero
    acc = tl.full([BLOCK_C], 0.0, sd_i.dtype)
    for p0 in range(start, end, BLOCK_E):
        ps = p0 + tl.arange(0, BLOCK_E)
        emask = ps < end
        j = tl.load(col + ps, mask=emask, other=0)
        e = tl.load(perm + ps, mask=emask, other=0)
        pre = tl.load(ss + j * H + h, mask=emask, other=0.0) + sd_i
        if HAS_ES:
            pre += tl.load(es + e * H + h, mask=emask, other=0.0)
        logit = tl.where(emask, _leaky(pre, slope), float("-inf"))
        tl.store(alpha + e * H + h, logit, mask=emask)
        m_new = tl.maximum(m, tl.max(logit, axis=0))
        r = tl.exp(m - m_new)
        w = tl.exp(logit - m_new)
        s = s * r + tl.sum(w, axis=0)
        if HAS_SCALE:
            w = w * tl.load(scale + e * H + h, mask=emask, other=0.0)
        tile = emask[:, None] & cmask[None, :]
        v = tl.load(wh + (j[:, None] * H + h) * C + cs[None, :], mask=tile, other=0.0)
        acc = acc * r + tl.sum(w[:, None] * v, axis=0)
        m = m_new
    s_safe = tl.where(s > 0, s, 1.0)
    tl.store(out + (i * H + h) * C + cs, acc / s_safe, mask=cmask)
    tl.debug_barrier()  # the logits stored above may sit in other threads' lanes
    for p0 in range(start, end, BLOCK_E):
        ps = p0 + tl.arange(0, BLOCK_E)
        emask = ps < end
        e = tl.load(perm + ps, mask=emask, other=0)
        logit = tl.load(alpha + e * H + h, mask=emask, other=0.0)
        tl.store(alpha + e * H + h, tl.exp(logit - m) / s_safe, mask=emask)


@triton.jit
def _gat_bwd_dst(
    rowptr, col, perm, ss, sd, es, wh, scale, alpha, gout, galpha, upstream, dpre, gsd,
    H, C, slope_ptr,
    HAS_ES: tl.constexpr, HAS_SCALE: tl.constexpr, HAS_GALPHA: tl.constexpr,
    BLOCK_E: tl.constexpr, BLOCK_C: tl.constexpr,
):  # fmt: skip
    i = tl.program_id(0).to(tl.int64)
    h = tl.program_id(1).to(tl.int64)
    slope = tl.load(slope_ptr)  # in the data dtype (a Python float would be fp32)
    start = tl.load(rowptr + i)
    end = tl.load(rowptr + i + 1)
    cs = tl.arange(0, BLOCK_C)
    cmask = cs < C
    g = tl.load(gout + (i * H + h) * C + cs, mask=cmask, other=0.0)
    sd_i = tl.load(sd + i * H + h)
    dot_sum = sd_i * 0.0
    for p0 in range(start, end, BLOCK_E):
        ps = p0 + tl.arange(0, BLOCK_E)
        emask = ps < end
        j = tl.load(col + ps, mask=emask, other=0)
        e = tl.load(perm + ps, mask=emask, other=0)
        tile = emask[:, None] & cmask[None, :]
        v = tl.load(wh + (j[:, None] * H + h) * C + cs[None, :], mask=tile, other=0.0)
        d = tl.sum(v * g[None, :], axis=1)
        if HAS_SCALE:
            d = d * tl.load(scale + e * H + h, mask=emask, other=0.0)
        if HAS_GALPHA:
            d += tl.load(galpha + e * H + h, mask=emask, other=0.0)
        al = tl.load(alpha + e * H + h, mask=emask, other=0.0)
        tl.store(upstream + e * H + h, d, mask=emask)
        dot_sum += tl.sum(al * d, axis=0)
    tl.debug_barrier()  # upstream stored above is read back below, possibly by other threads
    gsd_acc = sd_i * 0.0
    for p0 in range(start, end, BLOCK_E):
        ps = p0 + tl.arange(0, BLOCK_E)
        emask = ps < end
        j = tl.load(col + ps, mask=emask, other=0)
        e = tl.load(perm + ps, mask=emask, other=0)
        al = tl.load(alpha + e * H + h, mask=emask, other=0.0)
        d = tl.load(upstream + e * H + h, mask=emask, other=0.0)
        pre = tl.load(ss + j * H + h, mask=emask, other=0.0) + sd_i
        if HAS_ES:
            pre += tl.load(es + e * H + h, mask=emask, other=0.0)
        dp = tl.where(emask, al * (d - dot_sum) * _leaky_grad(pre, slope), 0.0)
        tl.store(dpre + e * H + h, dp, mask=emask)
        gsd_acc += tl.sum(dp, axis=0)
    tl.store(gsd + i * H + h, gsd_acc)


@triton.jit
def _gat_bwd_src(
    colptr, row, cperm, scale, alpha, gout, dpre, gwh, gss,
    H, C,
    HAS_SCALE: tl.constexpr, BLOCK_E: tl.constexpr, BLOCK_C: tl.constexpr,
):  # fmt: skip
    j = tl.program_id(0).to(tl.int64)
    h = tl.program_id(1).to(tl.int64)
    start = tl.load(colptr + j)
    end = tl.load(colptr + j + 1)
    cs = tl.arange(0, BLOCK_C)
    cmask = cs < C
    acc = tl.full([BLOCK_C], 0.0, gout.dtype.element_ty)
    gss_acc = tl.sum(acc, axis=0)
    for q0 in range(start, end, BLOCK_E):
        qs = q0 + tl.arange(0, BLOCK_E)
        emask = qs < end
        i = tl.load(row + qs, mask=emask, other=0)
        e = tl.load(cperm + qs, mask=emask, other=0)
        tile = emask[:, None] & cmask[None, :]
        g = tl.load(gout + (i[:, None] * H + h) * C + cs[None, :], mask=tile, other=0.0)
        al = tl.load(alpha + e * H + h, mask=emask, other=0.0)
        if HAS_SCALE:
            al = al * tl.load(scale + e * H + h, mask=emask, other=0.0)
        acc += tl.sum(al[:, None] * g, axis=0)
        gss_acc += tl.sum(tl.load(dpre + e * H + h, mask=emask, other=0.0), axis=0)
    tl.store(gwh + (j * H + h) * C + cs, acc, mask=cmask)
    tl.store(gss + j * H + h, gss_acc)


# ---------------------------------------------------------------------------- wrappers ----
def _block_c(C: int) -> int:
    return max(triton.next_power_of_2(C), 2)


def _scalar(value: float, like: Tensor) -> Tensor:
    return torch.tensor([value], dtype=like.dtype, device=like.device)


def _or(t: Tensor | None, dummy: Tensor) -> Tensor:
    return dummy if t is None else t


def gatv2_forward(csr: EdgeCSR, xs, xt, xe, att, slope, scale, vs=None):
    """GATv2 attention forward; see :func:`gatkit.ops.fused.gatv2_attention`."""
    Nt, (H, C) = xt.size(0), xs.shape[1:]
    out = xs.new_empty((Nt, H, C))
    alpha = xs.new_empty((csr.num_edges, H))
    if Nt > 0:
        _gatv2_fwd[(Nt, H)](
            csr.rowptr, csr.col, csr.perm, xs, xt, _or(xe, xs), att, _or(scale, alpha),
            _or(vs, xs), out, alpha, H, C, _scalar(slope, alpha),
            HAS_XE=xe is not None, HAS_SCALE=scale is not None, HAS_VS=vs is not None,
            **LAUNCH, BLOCK_C=_block_c(C),
        )  # fmt: skip
    return out, alpha


def gatv2_backward(
    csr: EdgeCSR, xs, xt, xe, att, slope, scale, alpha, gout, galpha, need_gxe, vs=None
):
    """GATv2 attention backward: ``(grad xs, grad xt, grad xe or None, grad att, grad vs)``."""
    Nt, Ns, (H, C) = xt.size(0), xs.size(0), xs.shape[1:]
    gvs = None if vs is None else torch.zeros_like(vs)
    dlogit = torch.empty_like(alpha)
    gxt = torch.zeros_like(xt)
    gxs = torch.zeros_like(xs)
    gxe = xs.new_empty((csr.num_edges, H, C)) if need_gxe else None
    gatt_rows = xt.new_zeros((Nt, H, C))
    if Nt > 0:
        _gatv2_bwd_dst[(Nt, H)](
            csr.rowptr, csr.col, csr.perm, xs, xt, _or(xe, xs), att, _or(scale, alpha),
            _or(vs, xs), alpha, gout, _or(galpha, alpha), torch.empty_like(alpha), dlogit, gxt,
            _or(gxe, xs), gatt_rows,
            H, C, _scalar(slope, alpha),
            HAS_XE=xe is not None, HAS_SCALE=scale is not None, HAS_GALPHA=galpha is not None,
            NEED_GXE=gxe is not None, **LAUNCH, BLOCK_C=_block_c(C),
        )  # fmt: skip
    if Ns > 0:
        _gatv2_bwd_src[(Ns, H)](
            csr.colptr, csr.row, csr.cperm, xs, xt, _or(xe, xs), att, _or(scale, alpha), alpha,
            gout, dlogit, gxs, _or(gvs, gxs), H, C, _scalar(slope, alpha),
            HAS_XE=xe is not None, HAS_SCALE=scale is not None, HAS_VS=vs is not None,
            **LAUNCH, BLOCK_C=_block_c(C),
        )  # fmt: skip
    return gxs, gxt, gxe, gatt_rows.sum(0), gvs


def gat_forward(csr: EdgeCSR, ss, sd, es, wh, slope, scale):
    """GAT attention forward; see :func:`gatkit.ops.fused.gat_attention`."""
    Nt, (H, C) = sd.size(0), wh.shape[1:]
    out = wh.new_empty((Nt, H, C))
    alpha = wh.new_empty((csr.num_edges, H))
    if Nt > 0:
        _gat_fwd[(Nt, H)](
            csr.rowptr, csr.col, csr.perm, ss, sd, _or(es, sd), wh, _or(scale, alpha),
            out, alpha, H, C, _scalar(slope, alpha),
            HAS_ES=es is not None, HAS_SCALE=scale is not None,
            **LAUNCH, BLOCK_C=_block_c(C),
        )  # fmt: skip
    return out, alpha


def gat_backward(csr: EdgeCSR, ss, sd, es, wh, slope, scale, alpha, gout, galpha):
    """GAT attention backward: ``(grad ss, grad sd, grad es [E, H], grad wh)``."""
    Nt, Ns, (H, C) = sd.size(0), ss.size(0), wh.shape[1:]
    dpre = torch.zeros_like(alpha)
    gsd, gss, gwh = torch.zeros_like(sd), torch.zeros_like(ss), torch.zeros_like(wh)
    if Nt > 0:
        _gat_bwd_dst[(Nt, H)](
            csr.rowptr, csr.col, csr.perm, ss, sd, _or(es, sd), wh, _or(scale, alpha), alpha,
            gout, _or(galpha, alpha), torch.empty_like(alpha), dpre, gsd, H, C,
            _scalar(slope, alpha),
            HAS_ES=es is not None, HAS_SCALE=scale is not None, HAS_GALPHA=galpha is not None,
            **LAUNCH, BLOCK_C=_block_c(C),
        )  # fmt: skip
    if Ns > 0:
        _gat_bwd_src[(Ns, H)](
            csr.colptr, csr.row, csr.cperm, _or(scale, alpha), alpha, gout, dpre, gwh, gss,
            H, C, HAS_SCALE=scale is not None, **LAUNCH, BLOCK_C=_block_c(C),
        )  # fmt: skip
    return gss, gsd, dpre, gwh
