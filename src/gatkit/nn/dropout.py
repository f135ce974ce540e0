r"""Dropout on node features: sparse-aware, and with an independent mask per attention head.

The GAT authors' code gives every head :math:`k` its own dropout of the layer input and
drops the projected features again before aggregating them:

.. math::
    \mathbf{W}^k \tilde{\mathbf{h}}^k_j, \quad
    \tilde{\mathbf{h}}^k_j = \mathbf{h}_j \odot \mathbf{m}^k_j / (1 - p), \quad
    \mathbf{m}^k_j \sim \mathrm{Bernoulli}(1 - p)^F,

then :math:`\mathbf{h}_i' = \sum_j \alpha_{ij}\,\mathrm{drop}_p(\mathbf{W}^k\tilde{\mathbf{h}}^k_j)`
while the attention scores read the undropped :math:`\mathbf{W}^k\tilde{\mathbf{h}}^k`.
:func:`project_heads` computes the first part without materialising the
:math:`K` dropped copies of the input when it is mostly zeros.
"""

from __future__ import annotations

import warnings
import weakref

import torch
from torch import Tensor, nn

from gatkit.nn.recomputed_dropout import lean_dropout

# Inputs with more non-zeros than this fraction take the dense paths.
_SPARSE_FRACTION = 0.25
# Dense inputs whose K dropped copies would exceed this many entries are dropped head by
# head, with the masks drawn again in the backward pass instead of being kept.
_DENSE_COPIES_LIMIT = 1 << 25


class _SparsePattern:
    """Where a mostly-zero ``[N, F]`` tensor is non-zero, row-major and column-major (CSR/CSC)."""

    def __init__(self, x: Tensor) -> None:
        N, F = x.shape
        self.shape = (N, F)
        self.rows, self.cols = x.nonzero(as_tuple=True)  # [nnz] each, row-major order
        self.flat = self.rows * F + self.cols  # [nnz], positions in x.reshape(-1)
        self.crow = _pointers(self.rows, N)  # [N + 1]
        self._columns: tuple[Tensor, Tensor, Tensor] | None = None

    @property
    def by_column(self) -> Tensor:
        """``[nnz]`` the permutation to column-major order (computed on first use)."""
        return self._column_major()[0]

    def _column_major(self) -> tuple[Tensor, Tensor, Tensor]:
        if self._columns is None:
            N, F = self.shape
            order = torch.argsort(self.cols * N + self.rows)  # [nnz]
            self._columns = (order, _pointers(self.cols[order], F), self.rows[order])
        return self._columns

    def matrix(self, values: Tensor) -> Tensor:
        """``[N, F]`` sparse CSR matrix with ``values`` (row-major) at the pattern."""
        return _csr(self.crow, self.cols, values, self.shape)

    def transposed(self, values_by_column: Tensor) -> Tensor:
        """``[F, N]`` sparse CSR matrix, the transpose of :meth:`matrix`.

        ``values_by_column`` are the values in column-major order (``values[by_column]``).
        """
        _, ccol, rows_by_column = self._column_major()
        return _csr(ccol, rows_by_column, values_by_column, self.shape[::-1])


def _csr(pointers: Tensor, indices: Tensor, values: Tensor, shape: tuple[int, int]) -> Tensor:
    with warnings.catch_warnings():  # torch calls sparse CSR "beta" on every construction
        warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
        return torch.sparse_csr_tensor(pointers, indices, values, shape, check_invariants=False)


def _pointers(sorted_index: Tensor, size: int) -> Tensor:
    pointers = sorted_index.new_zeros(size + 1)
    pointers[1:] = torch.bincount(sorted_index, minlength=size).cumsum(0)
    return pointers


class _NonzeroCache:
    """The sparsity pattern of the last tensor seen (full-batch features never change).

    :meth:`pattern` is ``None`` for a tensor with more than a quarter non-zeros (counted
    without building the pattern): such inputs take the dense paths.
    """

    def __init__(self) -> None:
        self._entry: tuple[weakref.ref, int, _SparsePattern | None] | None = None

    def pattern(self, x: Tensor) -> _SparsePattern | None:
        entry = self._entry
        if entry is not None and entry[0]() is x and entry[1] == x._version:
            return entry[2]
        sparse = int(torch.count_nonzero(x)) <= _SPARSE_FRACTION * x.numel()
        pattern = _SparsePattern(x.detach()) if sparse else None
        self._entry = (weakref.ref(x), x._version, pattern)
        return pattern


class _HeadwiseSparseProduct(torch.autograd.Function):
    """``out[:, k] = A_k W_k^T`` with ``A_k`` the pattern carrying ``values[k]``.

    Gradient for ``weight`` only (the caller takes this path when ``x`` needs none); the
    backward pass multiplies by the transposed (CSC) pattern, so no sparse transpose is
    formed per step.
    """

    @staticmethod
    def forward(ctx, pattern: _SparsePattern, values: Tensor, weight: Tensor) -> Tensor:
        K = weight.size(0)  # weight [K, C, F], values [K, nnz]
        heads = [pattern.matrix(values[k]) @ weight[k].t() for k in range(K)]
        ctx.pattern = pattern
        ctx.save_for_backward(values)
        return torch.stack(heads, dim=1)  # [N, K, C]

    @staticmethod
    def backward(ctx, grad_out: Tensor):
        (values,) = ctx.saved_tensors
        by_column = values.index_select(1, ctx.pattern.by_column)  # [K, nnz], all heads
        grads = [
            (ctx.pattern.transposed(by_column[k]) @ grad_out[:, k]).t()
            for k in range(values.size(0))
        ]  # K × [C, F]
        return None, None, torch.stack(grads)


class FeatureDropout(nn.Module):
    r"""Dropout that draws masks only for the non-zero entries of a mostly-zero input.

    :math:`\mathrm{drop}_p(x)_{ij} = x_{ij} m_{ij} / (1 - p)` with
    :math:`m_{ij} \sim \mathrm{Bernoulli}(1 - p)`. A zero entry stays zero whatever
    :math:`m_{ij}`, so drawing masks for the non-zeros only gives the same distribution as
    ``nn.functional.dropout`` at a fraction of the cost on bag-of-words features (Cora: 1.3 %
    non-zero). The non-zero positions of the last input are cached; inputs with more than a
    quarter non-zeros use the dense dropout (:func:`~gatkit.nn.recomputed_dropout.lean_dropout`).
    """

    def __init__(self, p: float) -> None:
        super().__init__()
        self.p = p
        self._nonzero = _NonzeroCache()

    def forward(self, x: Tensor) -> Tensor:
        if not self.training or self.p == 0.0:
            return x
        pattern = self._nonzero.pattern(x)
        if pattern is None:  # dense: F.dropout's values, one byte per entry kept for backward
            return lean_dropout(x, self.p, training=True)
        rows, cols = pattern.rows, pattern.cols
        values = nn.functional.dropout(x[rows, cols], p=self.p, training=True)  # [nnz]
        out = torch.zeros_like(x)
        out[rows, cols] = values
        return out

    def extra_repr(self) -> str:
        return f"p={self.p}"


class _LeanHeadwiseProduct(torch.autograd.Function):
    """``out[:, k] = (x ⊙ m_k / (1 - p)) W_k^T`` holding one ``[N, F]`` mask at a time.

    The masks come from a generator seeded with ``seed``; the backward pass seeds it again
    and redraws them, so only ``x`` and the weights are saved (not ``K`` dropped copies).
    """

    @staticmethod
    def forward(ctx, x: Tensor, weight: Tensor, p: float, seed: int) -> Tensor:
        K = weight.size(0)  # weight [K, C, F]
        generator = torch.Generator(device=x.device).manual_seed(seed)
        heads = []
        for k in range(K):
            dropped = _draw_keep(x, p, generator).mul_(x)  # [N, F]
            heads.append(dropped @ weight[k].t())  # [N, C]
        ctx.save_for_backward(x, weight)
        ctx.p, ctx.seed = p, seed
        return torch.stack(heads, dim=1)  # [N, K, C]

    @staticmethod
    def backward(ctx, grad_out: Tensor):
        x, weight = ctx.saved_tensors
        generator = torch.Generator(device=x.device).manual_seed(ctx.seed)
        grad_x = torch.zeros_like(x) if ctx.needs_input_grad[0] else None
        grad_weight = torch.empty_like(weight)
        for k in range(weight.size(0)):
            keep = _draw_keep(x, ctx.p, generator)  # [N, F]: m_k / (1 - p)
            g = grad_out[:, k]  # [N, C]
            grad_weight[k] = g.t() @ (keep * x)
            if grad_x is not None:
                grad_x += (g @ weight[k]) * keep
        return grad_x, grad_weight, None, None


def _draw_keep(x: Tensor, p: float, generator: torch.Generator) -> Tensor:
    """``[N, F]`` with entries ``1 / (1 - p)`` (probability ``1 - p``) or 0."""
    keep = torch.rand(x.shape, dtype=x.dtype, device=x.device, generator=generator)
    return keep.ge_(p).div_(1.0 - p)


class HeadwiseProjection(nn.Module):
    r""":math:`\mathbf{W}^k \tilde{\mathbf{h}}^k_j` for every head :math:`k`, one mask per head.

    Calling it with ``x [N, F]`` and linear maps ``W [K C, F]`` (each with an optional bias)
    returns one ``[N, K, C]`` tensor per map; all maps see the same per-head masks (the
    authors' head drops its input once, then projects). Without dropout (``p = 0`` or eval
    mode) this is exactly ``linear(x).view(N, K, C)``.

    Mostly-zero inputs (bag-of-words features) are dropped on their non-zeros only and
    projected with one sparse product per head; dense inputs form the ``[K, N, F]`` dropped
    copy once, or, when it would exceed ``2**25`` entries, are dropped head by head with the
    masks redrawn from a saved seed in the backward pass.
    """

    def __init__(self, heads: int, p: float) -> None:
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"feature dropout must lie in [0, 1), got {p!r}")
        self.heads = heads
        self.p = p
        self._nonzero = _NonzeroCache()

    @property
    def is_plain(self) -> bool:
        """No masks are drawn: each output is ``linear(x).view(N, K, C)``."""
        return not self.training or self.p == 0.0

    def forward(self, x: Tensor, linears: list[nn.Linear]) -> list[Tensor]:
        K = self.heads
        N = x.size(0)
        if self.is_plain:
            return [linear(x).view(N, K, linear.out_features // K) for linear in linears]
        pattern = None if x.requires_grad else self._nonzero.pattern(x)
        if pattern is not None:
            return self._sparse(x, pattern, linears)
        F = x.size(1)
        if K * N * F > _DENSE_COPIES_LIMIT:
            return self._lean(x, linears)
        keep = torch.rand((K, N, F), dtype=x.dtype, device=x.device).ge_(self.p)
        dropped = keep.mul_(x / (1.0 - self.p))  # [K, N, F]: m_k x / (1 - p)
        outs = []
        for linear in linears:
            weight = linear.weight.view(K, -1, F)  # [K, C, F]
            out = torch.bmm(dropped, weight.transpose(1, 2)).transpose(0, 1)  # [N, K, C]
            if linear.bias is not None:
                out = out + linear.bias.view(K, -1)
            outs.append(out)
        return outs

    def _lean(self, x: Tensor, linears: list[nn.Linear]) -> list[Tensor]:
        K, F = self.heads, x.size(1)
        widths = [linear.out_features // K for linear in linears]
        weight = torch.cat([linear.weight.view(K, -1, F) for linear in linears], dim=1)
        seed = int(torch.randint(0, 2**62, (1,)).item())  # from the global RNG: reproducible
        out = _LeanHeadwiseProduct.apply(x, weight, self.p, seed)  # [N, K, sum of C]
        outs = []
        for linear, part in zip(linears, out.split(widths, dim=2), strict=True):
            outs.append(part if linear.bias is None else part + linear.bias.view(K, -1))
        return outs

    def _sparse(self, x: Tensor, pattern: _SparsePattern, linears: list[nn.Linear]):
        K, F = self.heads, x.size(1)
        values = x.reshape(-1).index_select(0, pattern.flat)  # [nnz]
        keep = torch.rand((K, values.numel()), dtype=x.dtype, device=x.device).ge_(self.p)
        dropped = keep.mul_(values / (1.0 - self.p))  # [K, nnz]: m x / (1 - p), m ~ B(1 - p)
        outs = []
        for linear in linears:
            weight = linear.weight.view(K, -1, F)  # [K, C, F]
            out = _HeadwiseSparseProduct.apply(pattern, dropped, weight)  # [N, K, C]
            if linear.bias is not None:
                out = out + linear.bias.view(K, -1)
            outs.append(out)
        return outs

    def extra_repr(self) -> str:
        return f"heads={self.heads}, p={self.p}"
