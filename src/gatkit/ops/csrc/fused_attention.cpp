// Fused graph attention on destination-sorted CSR (GAT and GATv2), forward and backward.
//
// Notation (see gatkit/ops/fused.py for the full equations):
//   CSR over destinations: rowptr [N_t + 1], col [E] (source j of the p-th sorted edge),
//   perm [E] (user edge id of the p-th sorted edge). CSC over sources: colptr [N_s + 1],
//   row [E] (destination i), cperm [E] (user edge id), cpos [E] (CSR position p).
//   Per-edge tensors the kernels own (dropout mask, dlogit, alpha when asked for) are in
//   CSR order, so the destination passes read and write them sequentially; per-edge inputs
//   of the caller (edge scores, edge projections, their gradients) stay in the user's order.
//
// Forward, one destination i per iteration, heads h, two passes over its in-edges:
//   l_p = logit of edge p = j -> i, kept for the segment [deg, H];  m = max_p l_p;
//   w_p = exp(l_p - m) (one vectorized loop);  s = sum w_p;  acc = sum w_p * d_p * v_j;
//   out_i = acc / s;  lse_i = m + log s,
// where d_p is the attention-dropout factor (0 or 1 / (1 - p) from a uint8 mask, applied as a
// product, not a branch: the mask is random and a branch on it is mispredicted about half the
// time; 1 without dropout). Only lse [N_t, H] is kept for the backward pass: alpha_p =
// exp(l_p - lse_i) is recomputed there from the logit's inputs (its logits first, then their
// exp in one vectorized loop), so nothing of size E * H is saved (the mask is one byte per
// edge and head). Source gradients are summed in a second pass over the CSC so
// that every output row is written by one thread only (no atomics). GATv2's gradient of the
// attention vector is summed per block of 64 destinations, then over blocks in order, so
// every result is the same from run to run.

#include <torch/extension.h>

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <optional>
#include <type_traits>
#include <vector>

namespace {

using at::Tensor;
constexpr int64_t kRowsPerTask = 64;
constexpr int64_t kPrefetch = 8;   // edges ahead whose source rows are prefetched
constexpr int64_t kLine = 64;      // bytes per cache line

template <typename T>
inline T leaky(T v, T slope) {
  return v > T(0) ? v : v * slope;
}

template <typename T>
inline T leaky_grad(T v, T slope) {
  return v > T(0) ? T(1) : slope;
}

// exp(x) for the softmax weights, x <= 0 up to rounding (a logit minus its segment's max or
// log-sum-exp). float: Cephes' polynomial after range reduction x = n ln2 + r, written without
// branches or calls so that the compiler vectorizes the loops it is in (std::exp is a scalar
// library call); relative error below 2e-7, i.e. about one float ulp; exp(x) = 0 for x < -87.3
// (where expf is subnormal or 0) and for x = -inf; NaN gives NaN. double: std::exp.
inline float exp_nonpositive(float x) {
  const bool underflow = x < -87.3f;  // also -inf; NaN stays NaN
  x = underflow ? -87.3f : x;
  const float n = std::floor(x * 1.44269504088896341f + 0.5f);
  float r = x - n * 0.693359375f;
  r = r - n * -2.12194440e-4f;
  float y = 1.9875691500e-4f;
  y = y * r + 1.3981999507e-3f;
  y = y * r + 8.3334519073e-3f;
  y = y * r + 4.1665795894e-2f;
  y = y * r + 1.6666665459e-1f;
  y = y * r + 5.0000001201e-1f;
  y = y * (r * r) + r + 1.0f;
  const int32_t bits = (static_cast<int32_t>(n) + 127) << 23;  // 2^n, n in [-126, 1]
  float scale;
  std::memcpy(&scale, &bits, sizeof(scale));
  return underflow ? 0.0f : y * scale;
}

inline double exp_nonpositive(double x) { return std::exp(x); }

// values[k] = exp(values[k] - shift[k % H]) for k < count (a segment's [deg, H] logits).
template <typename T>
inline void exp_shifted(T* values, int64_t count, const T* shift, int64_t H) {
  if (H == 1) {
    const T m = shift[0];
#pragma omp simd
    for (int64_t k = 0; k < count; ++k) values[k] = exp_nonpositive(values[k] - m);
    return;
  }
  for (int64_t k = 0; k < count; k += H) {
#pragma omp simd
    for (int64_t h = 0; h < H; ++h) values[k + h] = exp_nonpositive(values[k + h] - shift[h]);
  }
}

// Ask for rows ahead of use: the gathers of source rows in random order are bound by memory
// latency, not bandwidth. prefetch_span: the `width` elements from r (a row of a strided
// tensor); prefetch_row: row `row` of a contiguous [rows, width] array.
template <typename T>
inline void prefetch_span(const T* r, int64_t width) {
  for (int64_t k = 0; k < width; k += kLine / static_cast<int64_t>(sizeof(T))) {
    __builtin_prefetch(r + k);
  }
}

template <typename T>
inline void prefetch_row(const T* base, int64_t row, int64_t width) {
  prefetch_span(base + row * width, width);
}

template <typename T>
const T* opt_ptr(const std::optional<Tensor>& t) {
  return (t.has_value() && t->defined()) ? t->data_ptr<T>() : nullptr;
}

// Attention-dropout factor of (CSR position p, head h): keep / (1 - p) or 0; 1 without mask.
template <typename T>
struct Dropout {
  const uint8_t* mask;  // [E, H] in CSR order, or nullptr
  T keep_scale;
  inline T at(int64_t index) const {
    return mask ? static_cast<T>(mask[index]) * keep_scale : T(1);  // no branch: 0 or 1
  }
};

template <typename T>
inline T dot(const T* a, const T* b, int64_t C) {
  T d = 0;
#pragma omp simd reduction(+ : d)
  for (int64_t c = 0; c < C; ++c) d += a[c] * b[c];
  return d;
}

template <typename T>
inline void axpy(T w, const T* x, T* y, int64_t C) {
#pragma omp simd
  for (int64_t c = 0; c < C; ++c) y[c] += w * x[c];
}

// Finish destination i: out = acc / s and lse = m + log s (-inf for an empty segment).
template <typename T>
inline void finish_row(int64_t i, int64_t H, int64_t C, const T* m, const T* s, const T* acc,
                       T* out, T* lse) {
  for (int64_t h = 0; h < H; ++h) {
    const T inv = s[h] > T(0) ? T(1) / s[h] : T(0);
    for (int64_t c = 0; c < C; ++c) out[(i * H + h) * C + c] = acc[h * C + c] * inv;
    lse[i * H + h] = s[h] > T(0) ? m[h] + std::log(s[h]) : -std::numeric_limits<T>::infinity();
  }
}

// ------------------------------------------------------------------------------ GAT ----
// l_p[h] = LeakyReLU(ss[j, h] + sd[i, h] + es[e, h]); out_i = sum_p alpha_p d_p wh[j].
template <typename T>
inline T gat_pre(const T* ss, const T* sd, const T* es, int64_t i, int64_t j, int64_t e,
                 int64_t h, int64_t H) {
  T pre = ss[j * H + h] + sd[i * H + h];
  if (es) pre += es[e * H + h];
  return pre;
}

// Per destination, two passes over its in-edges: the logits [deg, H] and their exp (one
// vectorized loop, no per-edge rescaling), then the weighted sum of the source rows, which
// the first pass has prefetched and the second finds in cache.
template <typename T, int kC>
void gat_forward_kernel(int64_t Nt, int64_t H, int64_t C, const int64_t* rowptr,
                        const int64_t* col, const int64_t* perm, const T* ss, const T* sd,
                        const T* es, const T* wh, T slope, Dropout<T> drop, T* out, T* lse,
                        T* alpha) {
  if (kC > 0) C = kC;  // a common head width, known when compiled: fixed-length loops
  const int64_t num_edges = rowptr[Nt];
#pragma omp parallel
  {
    std::vector<T> m(H), s(H), acc(H * C), w;
#pragma omp for schedule(dynamic, kRowsPerTask)
    for (int64_t i = 0; i < Nt; ++i) {
      const int64_t begin = rowptr[i], end = rowptr[i + 1];
      w.resize((end - begin) * H);
      std::fill(m.begin(), m.end(), -std::numeric_limits<T>::infinity());
      for (int64_t p = begin; p < end; ++p) {
        const int64_t j = col[p], e = es ? perm[p] : 0;
        if (p + kPrefetch < num_edges) {
          prefetch_row(wh, col[p + kPrefetch], H * C);
          prefetch_row(ss, col[p + kPrefetch], H);
        }
        T* w_p = w.data() + (p - begin) * H;
        for (int64_t h = 0; h < H; ++h) {
          const T logit = leaky(gat_pre(ss, sd, es, i, j, e, h, H), slope);
          w_p[h] = logit;
          m[h] = std::max(m[h], logit);
        }
      }
      exp_shifted(w.data(), (end - begin) * H, m.data(), H);
      std::fill(s.begin(), s.end(), T(0));
      std::fill(acc.begin(), acc.end(), T(0));
      for (int64_t p = begin; p < end; ++p) {
        const T* w_p = w.data() + (p - begin) * H;
        const T* v = wh + col[p] * H * C;
        for (int64_t h = 0; h < H; ++h) {
          s[h] += w_p[h];
          axpy(w_p[h] * drop.at(p * H + h), v + h * C, acc.data() + h * C, C);
        }
      }
      finish_row(i, H, C, m.data(), s.data(), acc.data(), out, lse);
      if (alpha) {
        for (int64_t p = begin; p < end; ++p) {
          for (int64_t h = 0; h < H; ++h) {
            alpha[p * H + h] = w[(p - begin) * H + h] / s[h];
          }
        }
      }
    }
  }
}

// Destination pass: alpha_p = exp(l_p - lse_i); g_p = d_p <gout_i, wh_j> + galpha_p;
// dl_p = alpha_p (g_p - sum_k alpha_k g_k); dpre_p = dl_p LeakyReLU'(pre_p); gsd_i = sum dpre.
template <typename T, int kC>
void gat_backward_dst_kernel(int64_t Nt, int64_t H, int64_t C, const int64_t* rowptr,
                             const int64_t* col, const int64_t* perm, const T* ss, const T* sd,
                             const T* es, const T* wh, T slope, Dropout<T> drop, const T* lse,
                             const T* gout, const T* galpha, T* dpre, T* gsd) {
  if (kC > 0) C = kC;  // a common head width, known when compiled: fixed-length loops
  const int64_t num_edges = rowptr[Nt];
#pragma omp parallel
  {
    std::vector<T> dot_sum(H), seg_alpha;
#pragma omp for schedule(dynamic, kRowsPerTask)
    for (int64_t i = 0; i < Nt; ++i) {
      const int64_t begin = rowptr[i], end = rowptr[i + 1];
      std::fill(dot_sum.begin(), dot_sum.end(), T(0));
      seg_alpha.resize((end - begin) * H);
      const T* g = gout + i * H * C;
      for (int64_t p = begin; p < end; ++p) {
        const int64_t j = col[p], e = (es || galpha) ? perm[p] : 0;
        if (p + kPrefetch < num_edges) {
          prefetch_row(wh, col[p + kPrefetch], H * C);
          prefetch_row(ss, col[p + kPrefetch], H);
        }
        const T* v = wh + j * H * C;
        T* logit_p = seg_alpha.data() + (p - begin) * H;
        for (int64_t h = 0; h < H; ++h) {
          logit_p[h] = leaky(gat_pre(ss, sd, es, i, j, e, h, H), slope);
          T d = dot(g + h * C, v + h * C, C) * drop.at(p * H + h);
          if (galpha) d += galpha[e * H + h];
          dpre[p * H + h] = d;
        }
      }
      exp_shifted(seg_alpha.data(), (end - begin) * H, lse + i * H, H);  // alpha_p
      for (int64_t p = begin; p < end; ++p) {
        for (int64_t h = 0; h < H; ++h) {
          dot_sum[h] += seg_alpha[(p - begin) * H + h] * dpre[p * H + h];
        }
      }
      for (int64_t h = 0; h < H; ++h) gsd[i * H + h] = T(0);
      for (int64_t p = begin; p < end; ++p) {
        const int64_t j = col[p], e = es ? perm[p] : 0;
        for (int64_t h = 0; h < H; ++h) {
          const T pre = gat_pre(ss, sd, es, i, j, e, h, H);
          const T dl = seg_alpha[(p - begin) * H + h] * (dpre[p * H + h] - dot_sum[h]);
          const T dp = dl * leaky_grad(pre, slope);
          dpre[p * H + h] = dp;
          gsd[i * H + h] += dp;
        }
      }
    }
  }
}

// Source pass: gwh_j = sum_p alpha_p d_p gout_i (alpha recomputed), gss_j = sum_p dpre_p.
// Per source, the logits of its out-edges minus their destinations' lse first, then their
// exp in one vectorized loop, then the weighted sum of the gradient rows.
template <typename T, int kC>
void gat_backward_src_kernel(int64_t Ns, int64_t H, int64_t C, const int64_t* colptr,
                             const int64_t* row, const int64_t* cperm, const int64_t* cpos,
                             const T* ss, const T* sd, const T* es, T slope, Dropout<T> drop,
                             const T* lse, const T* gout, const T* dpre, T* gwh, T* gss) {
  if (kC > 0) C = kC;  // a common head width, known when compiled: fixed-length loops
  const int64_t num_edges = colptr[Ns];
#pragma omp parallel
  {
    std::vector<T> seg;
#pragma omp for schedule(dynamic, kRowsPerTask)
    for (int64_t j = 0; j < Ns; ++j) {
      const int64_t begin = colptr[j], end = colptr[j + 1];
      seg.resize((end - begin) * H);
      T* gv = gwh + j * H * C;
      for (int64_t k = 0; k < H * C; ++k) gv[k] = T(0);
      T* gss_j = gss + j * H;
      for (int64_t h = 0; h < H; ++h) gss_j[h] = T(0);
      for (int64_t q = begin; q < end; ++q) {
        const int64_t i = row[q], p = cpos[q], e = es ? cperm[q] : 0;
        if (q + kPrefetch < num_edges) {
          prefetch_row(gout, row[q + kPrefetch], H * C);
          prefetch_row(sd, row[q + kPrefetch], H);
          prefetch_row(lse, row[q + kPrefetch], H);
          prefetch_row(dpre, cpos[q + kPrefetch], H);
          if (drop.mask) prefetch_row(drop.mask, cpos[q + kPrefetch], H);
        }
        T* seg_q = seg.data() + (q - begin) * H;
        for (int64_t h = 0; h < H; ++h) {
          seg_q[h] = leaky(gat_pre(ss, sd, es, i, j, e, h, H), slope) - lse[i * H + h];
          gss_j[h] += dpre[p * H + h];
        }
      }
      const T zero = T(0);
      exp_shifted(seg.data(), (end - begin) * H, &zero, 1);  // alpha_p
      for (int64_t q = begin; q < end; ++q) {
        const T* g = gout + row[q] * H * C;
        const int64_t p = cpos[q];
        for (int64_t h = 0; h < H; ++h) {
          axpy(seg[(q - begin) * H + h] * drop.at(p * H + h), g + h * C, gv + h * C, C);
        }
      }
    }
  }
}

// ---------------------------------------------------------------------------- GATv2 ----
// z_p = xs[j] + xt[i] (+ xe[e]) per head; l_p[h] = sum_c att[h, c] LeakyReLU(z_p[h, c]).
template <typename T>
inline T gatv2_logit(const T* xs_j, const T* xt_i, const T* xe_e, const T* att_h, int64_t C,
                     T slope) {
  T l = 0;
  if (xe_e) {
#pragma omp simd reduction(+ : l)
    for (int64_t c = 0; c < C; ++c) l += att_h[c] * leaky(xs_j[c] + xt_i[c] + xe_e[c], slope);
  } else {
#pragma omp simd reduction(+ : l)
    for (int64_t c = 0; c < C; ++c) l += att_h[c] * leaky(xs_j[c] + xt_i[c], slope);
  }
  return l;
}


// All H logits of one edge into out[0..H): the products att * LeakyReLU(z) of the whole
// [H, C] row in one vectorized loop, then the per-head sums channel by channel, each across
// the heads (no horizontal reduction per head). Rows wider than kMaxRow go head by head.
constexpr int64_t kMaxRow = 256;
template <typename T>
inline void gatv2_logits(const T* xs_j, const T* xt_i, const T* xe_e, const T* att, int64_t H,
                         int64_t C, T slope, T* out) {
  if (H * C > kMaxRow || H == 1) {
    for (int64_t h = 0; h < H; ++h) {
      out[h] = gatv2_logit(xs_j + h * C, xt_i + h * C, xe_e ? xe_e + h * C : nullptr,
                           att + h * C, C, slope);
    }
    return;
  }
  T t[kMaxRow];
  if (xe_e) {
#pragma omp simd
    for (int64_t k = 0; k < H * C; ++k) t[k] = att[k] * leaky(xs_j[k] + xt_i[k] + xe_e[k], slope);
  } else {
#pragma omp simd
    for (int64_t k = 0; k < H * C; ++k) t[k] = att[k] * leaky(xs_j[k] + xt_i[k], slope);
  }
  for (int64_t h = 0; h < H; ++h) out[h] = t[h * C];
  for (int64_t c = 1; c < C; ++c) {
#pragma omp simd
    for (int64_t h = 0; h < H; ++h) out[h] += t[h * C + c];
  }
}

template <typename T, int kC>
void gatv2_forward_kernel(int64_t Nt, int64_t H, int64_t C, const int64_t* rowptr,
                          const int64_t* col, const int64_t* perm, const T* xs, const T* xt,
                          int64_t ld, const T* xe, const T* att, const T* vs, T slope,
                          Dropout<T> drop, T* out, T* lse, T* alpha) {
  if (kC > 0) C = kC;  // a common head width, known when compiled: fixed-length loops
  const int64_t num_edges = rowptr[Nt];
#pragma omp parallel
  {
    std::vector<T> m(H), s(H), acc(H * C), w;
#pragma omp for schedule(dynamic, kRowsPerTask)
    for (int64_t i = 0; i < Nt; ++i) {
      const int64_t begin = rowptr[i], end = rowptr[i + 1];
      w.resize((end - begin) * H);
      std::fill(m.begin(), m.end(), -std::numeric_limits<T>::infinity());
      const T* xt_i = xt + i * ld;
      for (int64_t p = begin; p < end; ++p) {
        const int64_t j = col[p];
        if (p + kPrefetch < num_edges) {
          prefetch_span(xs + col[p + kPrefetch] * ld, H * C);
          if (vs) prefetch_row(vs, col[p + kPrefetch], H * C);
        }
        const T* xs_j = xs + j * ld;
        const T* xe_e = xe ? xe + perm[p] * H * C : nullptr;
        T* w_p = w.data() + (p - begin) * H;
        gatv2_logits(xs_j, xt_i, xe_e, att, H, C, slope, w_p);
        for (int64_t h = 0; h < H; ++h) m[h] = std::max(m[h], w_p[h]);
      }
      exp_shifted(w.data(), (end - begin) * H, m.data(), H);
      std::fill(s.begin(), s.end(), T(0));
      std::fill(acc.begin(), acc.end(), T(0));
      for (int64_t p = begin; p < end; ++p) {
        const T* w_p = w.data() + (p - begin) * H;
        const T* v = vs ? vs + col[p] * H * C : xs + col[p] * ld;
        for (int64_t h = 0; h < H; ++h) {
          s[h] += w_p[h];
          axpy(w_p[h] * drop.at(p * H + h), v + h * C, acc.data() + h * C, C);
        }
      }
      finish_row(i, H, C, m.data(), s.data(), acc.data(), out, lse);
      if (alpha) {
        for (int64_t p = begin; p < end; ++p) {
          for (int64_t h = 0; h < H; ++h) {
            alpha[p * H + h] = w[(p - begin) * H + h] / s[h];
          }
        }
      }
    }
  }
}

// Destination pass: alpha_p recomputed from the logit; dl_p as for GAT;
// dz_p[h, c] = dl_p[h] att[h, c] LeakyReLU'(z_p[h, c]); gxt_i = sum_p dz_p; gxe_e = dz_p;
// gatt[h, c] = sum_p dl_p[h] LeakyReLU(z_p[h, c]) (per block of rows, summed in block order).
// dl is written to dlogit [E, H] (CSR order) for the source pass.
template <typename T, int kC>
void gatv2_backward_dst_kernel(int64_t Nt, int64_t H, int64_t C, const int64_t* rowptr,
                               const int64_t* col, const int64_t* perm, const T* xs,
                               const T* xt, int64_t ld, const T* xe, const T* att,
                               const T* vs, T slope,
                               Dropout<T> drop, const T* lse, const T* gout, const T* galpha,
                               T* dlogit, T* gxt, T* gxe, T* gatt_blocks) {
  if (kC > 0) C = kC;  // a common head width, known when compiled: fixed-length loops
  const int64_t num_edges = rowptr[Nt];
#pragma omp parallel
  {
    std::vector<T> dot_sum(H), seg_alpha;
#pragma omp for schedule(dynamic, kRowsPerTask)
    for (int64_t i = 0; i < Nt; ++i) {
      // Rows [b * kRowsPerTask, (b + 1) * kRowsPerTask) are one task, run by one thread in
      // row order: block b's partial sum of gatt is the same in every run.
      T* gatt = gatt_blocks + (i / kRowsPerTask) * H * C;
      const int64_t begin = rowptr[i], end = rowptr[i + 1];
      std::fill(dot_sum.begin(), dot_sum.end(), T(0));
      seg_alpha.resize((end - begin) * H);
      const T* g = gout + i * H * C;
      const T* xt_i = xt + i * ld;
      T* gxt_i = gxt + i * ld;
      for (int64_t k = 0; k < H * C; ++k) gxt_i[k] = T(0);
      for (int64_t p = begin; p < end; ++p) {
        const int64_t j = col[p];
        if (p + kPrefetch < num_edges) {
          prefetch_span(xs + col[p + kPrefetch] * ld, H * C);
          if (vs) prefetch_row(vs, col[p + kPrefetch], H * C);
        }
        const T* xs_j = xs + j * ld;
        const T* v = vs ? vs + j * H * C : xs + j * ld;
        const T* xe_e = xe ? xe + perm[p] * H * C : nullptr;
        gatv2_logits(xs_j, xt_i, xe_e, att, H, C, slope, seg_alpha.data() + (p - begin) * H);
        for (int64_t h = 0; h < H; ++h) {
          T d = dot(g + h * C, v + h * C, C) * drop.at(p * H + h);
          if (galpha) d += galpha[perm[p] * H + h];
          dlogit[p * H + h] = d;
        }
      }
      exp_shifted(seg_alpha.data(), (end - begin) * H, lse + i * H, H);  // alpha_p
      for (int64_t p = begin; p < end; ++p) {
        for (int64_t h = 0; h < H; ++h) {
          dot_sum[h] += seg_alpha[(p - begin) * H + h] * dlogit[p * H + h];
        }
      }
      for (int64_t p = begin; p < end; ++p) {
        const int64_t j = col[p];
        const T* xs_j = xs + j * ld;
        const T* xe_e = xe ? xe + perm[p] * H * C : nullptr;
        T* gxe_e = gxe ? gxe + perm[p] * H * C : nullptr;
        for (int64_t h = 0; h < H; ++h) {
          const T dl = seg_alpha[(p - begin) * H + h] * (dlogit[p * H + h] - dot_sum[h]);
          dlogit[p * H + h] = dl;
          const int64_t o = h * C;
#pragma omp simd
          for (int64_t c = 0; c < C; ++c) {
            const T z = xs_j[o + c] + xt_i[o + c] + (xe_e ? xe_e[o + c] : T(0));
            const T dz = dl * att[o + c] * leaky_grad(z, slope);
            gatt[o + c] += dl * leaky(z, slope);
            gxt_i[o + c] += dz;
          }
          if (gxe_e) {
            for (int64_t c = 0; c < C; ++c) {
              const T z = xs_j[o + c] + xt_i[o + c] + xe_e[o + c];
              gxe_e[o + c] = dl * att[o + c] * leaky_grad(z, slope);
            }
          }
        }
      }
    }
  }
}

// Source pass: gxs_j = sum_p (alpha_p d_p gout_i + dz_p), alpha_p recomputed from the logit
// and dz_p from dlogit. With separate values vs (messages other than xs), the first term
// goes to gvs_j instead. Per source: the logits minus lse of its out-edges, their exp in one
// vectorized loop, then the sums (the destination rows are in cache from the first loop).
template <typename T, int kC>
void gatv2_backward_src_kernel(int64_t Ns, int64_t H, int64_t C, const int64_t* colptr,
                               const int64_t* row, const int64_t* cperm, const int64_t* cpos,
                               const T* xs, const T* xt, int64_t ld, const T* xe, const T* att,
                               T slope, Dropout<T> drop, const T* lse, const T* gout,
                               const T* dlogit,
                               T* gxs, T* gvs) {
  if (kC > 0) C = kC;  // a common head width, known when compiled: fixed-length loops
  const int64_t num_edges = colptr[Ns];
#pragma omp parallel
  {
    std::vector<T> seg;
#pragma omp for schedule(dynamic, kRowsPerTask)
    for (int64_t j = 0; j < Ns; ++j) {
      const int64_t begin = colptr[j], end = colptr[j + 1];
      seg.resize((end - begin) * H);
      const T* xs_j = xs + j * ld;
      T* gx = gxs + j * ld;
      T* gv = gvs ? gvs + j * H * C : gx;  // separate values: their gradient apart
      for (int64_t k = 0; k < H * C; ++k) gx[k] = gv[k] = T(0);
      for (int64_t q = begin; q < end; ++q) {
        const int64_t i = row[q];
        if (q + kPrefetch < num_edges) {
          prefetch_row(gout, row[q + kPrefetch], H * C);
          prefetch_span(xt + row[q + kPrefetch] * ld, H * C);
          prefetch_row(lse, row[q + kPrefetch], H);
          prefetch_row(dlogit, cpos[q + kPrefetch], H);
          if (drop.mask) prefetch_row(drop.mask, cpos[q + kPrefetch], H);
        }
        const T* xt_i = xt + i * ld;
        const T* xe_e = xe ? xe + cperm[q] * H * C : nullptr;
        T* seg_q = seg.data() + (q - begin) * H;
        gatv2_logits(xs_j, xt_i, xe_e, att, H, C, slope, seg_q);
        for (int64_t h = 0; h < H; ++h) seg_q[h] -= lse[i * H + h];
      }
      const T zero = T(0);
      exp_shifted(seg.data(), (end - begin) * H, &zero, 1);  // alpha_p
      for (int64_t q = begin; q < end; ++q) {
        const int64_t i = row[q], p = cpos[q];
        const T* g = gout + i * H * C;
        const T* xt_i = xt + i * ld;
        const T* xe_e = xe ? xe + cperm[q] * H * C : nullptr;
        for (int64_t h = 0; h < H; ++h) {
          const int64_t o = h * C;
          const T a = seg[(q - begin) * H + h] * drop.at(p * H + h);
          const T dl = dlogit[p * H + h];
          axpy(a, g + o, gv + o, C);
#pragma omp simd
          for (int64_t c = 0; c < C; ++c) {
            const T z = xs_j[o + c] + xt_i[o + c] + (xe_e ? xe_e[o + c] : T(0));
            gx[o + c] += dl * att[o + c] * leaky_grad(z, slope);
          }
        }
      }
    }
  }
}

// out[k] = sum_b parts[b, k], b in order: a fixed summation order whatever the threads did.
template <typename T>
void sum_blocks_in_order(const T* parts, int64_t blocks, int64_t width, T* out) {
  for (int64_t b = 0; b < blocks; ++b) {
    for (int64_t k = 0; k < width; ++k) out[k] += parts[b * width + k];
  }
}

// ------------------------------------------------------------------------ bindings ----
// Runs body(std::integral_constant<int, kC>) with kC = C for the common head widths, else
// kC = 0 (the width read at run time): the per-channel loops of the kernels get fixed lengths.
template <typename F>
void with_channels(int64_t C, F&& body) {
  switch (C) {
    case 8: body(std::integral_constant<int, 8>{}); break;
    case 16: body(std::integral_constant<int, 16>{}); break;
    case 32: body(std::integral_constant<int, 32>{}); break;
    case 64: body(std::integral_constant<int, 64>{}); break;
    default: body(std::integral_constant<int, 0>{});
  }
}

// keep_prob = 1 - p; the factor 1 / keep_prob is formed in T, as F.dropout forms it.
template <typename T>
Dropout<T> dropout_of(const std::optional<Tensor>& mask, double keep_prob) {
  const bool has = mask.has_value() && mask->defined();
  return Dropout<T>{has ? mask->data_ptr<uint8_t>() : nullptr,
                    T(1) / static_cast<T>(keep_prob)};
}

// Returns {out [N_t, H, C], lse [N_t, H], alpha [E, H] in CSR order (empty unless asked)}.
std::vector<Tensor> gat_forward(Tensor rowptr, Tensor col, Tensor perm, Tensor ss, Tensor sd,
                                std::optional<Tensor> es, Tensor wh, double slope,
                                std::optional<Tensor> mask, double keep_prob,
                                bool need_alpha) {
  const int64_t Nt = sd.size(0), H = wh.size(1), C = wh.size(2), E = col.size(0);
  auto out = at::empty({Nt, H, C}, wh.options());
  auto lse = at::empty({Nt, H}, wh.options());
  auto alpha = need_alpha ? at::empty({E, H}, wh.options()) : Tensor();
  AT_DISPATCH_FLOATING_TYPES(wh.scalar_type(), "gat_forward", [&] {
    with_channels(C, [&](auto kc) {
      gat_forward_kernel<scalar_t, decltype(kc)::value>(
          Nt, H, C, rowptr.data_ptr<int64_t>(), col.data_ptr<int64_t>(), perm.data_ptr<int64_t>(),
          ss.data_ptr<scalar_t>(), sd.data_ptr<scalar_t>(), opt_ptr<scalar_t>(es),
          wh.data_ptr<scalar_t>(), static_cast<scalar_t>(slope),
          dropout_of<scalar_t>(mask, keep_prob), out.data_ptr<scalar_t>(),
          lse.data_ptr<scalar_t>(), need_alpha ? alpha.data_ptr<scalar_t>() : nullptr);
    });
  });
  return {out, lse, alpha};
}

// Returns {gss, gsd, dpre [E, H] in CSR order (the gradient of es), gwh}.
std::vector<Tensor> gat_backward(Tensor rowptr, Tensor col, Tensor perm, Tensor colptr,
                                 Tensor row, Tensor cperm, Tensor cpos, Tensor ss, Tensor sd,
                                 std::optional<Tensor> es, Tensor wh, double slope,
                                 std::optional<Tensor> mask, double keep_prob, Tensor lse,
                                 Tensor gout, std::optional<Tensor> galpha) {
  const int64_t Nt = sd.size(0), Ns = ss.size(0), H = wh.size(1), C = wh.size(2);
  const int64_t E = col.size(0);
  auto dpre = at::empty({E, H}, wh.options());
  auto gsd = at::empty_like(sd);
  auto gss = at::empty_like(ss);
  auto gwh = at::empty_like(wh);
  AT_DISPATCH_FLOATING_TYPES(wh.scalar_type(), "gat_backward", [&] {
    const auto drop = dropout_of<scalar_t>(mask, keep_prob);
    const scalar_t* es_p = opt_ptr<scalar_t>(es);
    with_channels(C, [&](auto kc) {
      gat_backward_dst_kernel<scalar_t, decltype(kc)::value>(
          Nt, H, C, rowptr.data_ptr<int64_t>(), col.data_ptr<int64_t>(), perm.data_ptr<int64_t>(),
          ss.data_ptr<scalar_t>(), sd.data_ptr<scalar_t>(), es_p, wh.data_ptr<scalar_t>(),
          static_cast<scalar_t>(slope), drop, lse.data_ptr<scalar_t>(), gout.data_ptr<scalar_t>(),
          opt_ptr<scalar_t>(galpha), dpre.data_ptr<scalar_t>(), gsd.data_ptr<scalar_t>());
    });
    with_channels(C, [&](auto kc) {
      gat_backward_src_kernel<scalar_t, decltype(kc)::value>(
          Ns, H, C, colptr.data_ptr<int64_t>(), row.data_ptr<int64_t>(), cperm.data_ptr<int64_t>(),
          cpos.data_ptr<int64_t>(), ss.data_ptr<scalar_t>(), sd.data_ptr<scalar_t>(), es_p,
          static_cast<scalar_t>(slope), drop, lse.data_ptr<scalar_t>(), gout.data_ptr<scalar_t>(),
          dpre.data_ptr<scalar_t>(), gwh.data_ptr<scalar_t>(), gss.data_ptr<scalar_t>());
    });
  });
  return {gss, gsd, dpre, gwh};
}

// The row stride of xs [N_s, H, C] and xt [N_t, H, C], each of whose rows must be contiguous:
// H C for contiguous tensors, 2 H C when they are the halves pair[:, 0] and pair[:, 1] of one
// [N, 2, H, C] projection (`pair`). Strides of dimensions of size 1 are not read.
int64_t row_stride(const Tensor& xs, const Tensor& xt, bool pair) {
  const int64_t H = xs.size(1), C = xs.size(2), ld = (pair ? 2 : 1) * H * C;
  TORCH_CHECK(!pair || xs.size(0) == xt.size(0), "gatv2: a pair has one row count");
  for (const Tensor* x : {&xs, &xt}) {
    TORCH_CHECK(x->dim() == 3 && (x->size(2) <= 1 || x->stride(2) == 1) &&
                    (x->size(1) <= 1 || x->stride(1) == C) &&
                    (x->size(0) <= 1 || x->stride(0) == ld),
                pair ? "gatv2: xs and xt must be the halves of one [N, 2, H, C] tensor"
                     : "gatv2: xs and xt must be contiguous");
  }
  return ld;
}

// Returns {out [N_t, H, C], lse [N_t, H], alpha [E, H] in CSR order (empty unless asked)}.
std::vector<Tensor> gatv2_forward(Tensor rowptr, Tensor col, Tensor perm, Tensor xs, Tensor xt,
                                  std::optional<Tensor> xe, Tensor att, double slope,
                                  std::optional<Tensor> mask, double keep_prob,
                                  std::optional<Tensor> vs, bool need_alpha, bool pair) {
  const int64_t Nt = xt.size(0), H = xs.size(1), C = xs.size(2), E = col.size(0);
  const int64_t ld = row_stride(xs, xt, pair);
  auto out = at::empty({Nt, H, C}, xs.options());
  auto lse = at::empty({Nt, H}, xs.options());
  auto alpha = need_alpha ? at::empty({E, H}, xs.options()) : Tensor();
  AT_DISPATCH_FLOATING_TYPES(xs.scalar_type(), "gatv2_forward", [&] {
    with_channels(C, [&](auto kc) {
      gatv2_forward_kernel<scalar_t, decltype(kc)::value>(
          Nt, H, C, rowptr.data_ptr<int64_t>(), col.data_ptr<int64_t>(), perm.data_ptr<int64_t>(),
          xs.data_ptr<scalar_t>(), xt.data_ptr<scalar_t>(), ld, opt_ptr<scalar_t>(xe),
          att.data_ptr<scalar_t>(), opt_ptr<scalar_t>(vs), static_cast<scalar_t>(slope),
          dropout_of<scalar_t>(mask, keep_prob), out.data_ptr<scalar_t>(),
          lse.data_ptr<scalar_t>(), need_alpha ? alpha.data_ptr<scalar_t>() : nullptr);
    });
  });
  return {out, lse, alpha};
}

// Returns {gxs, gxt, gxe [E, H, C] user order (empty unless asked), gatt, gvs, gpair}. With
// `pair`, xs and xt are the halves pair[:, 0] and pair[:, 1] of one [N, 2, H, C] projection,
// and gxs, gxt are the halves of gpair [N, 2, H, C] (else gpair is empty).
std::vector<Tensor> gatv2_backward(Tensor rowptr, Tensor col, Tensor perm, Tensor colptr,
                                   Tensor row, Tensor cperm, Tensor cpos, Tensor xs, Tensor xt,
                                   std::optional<Tensor> xe, Tensor att, double slope,
                                   std::optional<Tensor> mask, double keep_prob, Tensor lse,
                                   Tensor gout, std::optional<Tensor> galpha, bool need_gxe,
                                   std::optional<Tensor> vs, bool pair) {
  const int64_t Nt = xt.size(0), Ns = xs.size(0), H = xs.size(1), C = xs.size(2);
  const int64_t E = col.size(0);
  const int64_t blocks = (Nt + kRowsPerTask - 1) / kRowsPerTask;
  const int64_t ld = row_stride(xs, xt, pair);  // the gradients are laid out as the inputs
  auto dlogit = at::empty({E, H}, xs.options());
  auto gpair = pair ? at::empty({Ns, 2, H, C}, xs.options()) : Tensor();
  auto gxt = pair ? gpair.select(1, 1) : at::empty_like(xt);
  auto gxs = pair ? gpair.select(1, 0) : at::empty_like(xs);
  auto gxe = need_gxe ? at::empty({E, H, C}, xs.options()) : Tensor();
  auto gvs = vs.has_value() ? at::empty_like(xs) : Tensor();
  auto gatt_blocks = at::zeros({blocks, H, C}, xs.options());
  auto gatt = at::zeros({H, C}, xs.options());
  AT_DISPATCH_FLOATING_TYPES(xs.scalar_type(), "gatv2_backward", [&] {
    const auto drop = dropout_of<scalar_t>(mask, keep_prob);
    const scalar_t* xe_p = opt_ptr<scalar_t>(xe);
    with_channels(C, [&](auto kc) {
      gatv2_backward_dst_kernel<scalar_t, decltype(kc)::value>(
          Nt, H, C, rowptr.data_ptr<int64_t>(), col.data_ptr<int64_t>(), perm.data_ptr<int64_t>(),
          xs.data_ptr<scalar_t>(), xt.data_ptr<scalar_t>(), ld, xe_p, att.data_ptr<scalar_t>(),
          opt_ptr<scalar_t>(vs), static_cast<scalar_t>(slope), drop, lse.data_ptr<scalar_t>(),
          gout.data_ptr<scalar_t>(), opt_ptr<scalar_t>(galpha), dlogit.data_ptr<scalar_t>(),
          gxt.data_ptr<scalar_t>(), need_gxe ? gxe.data_ptr<scalar_t>() : nullptr,
          gatt_blocks.data_ptr<scalar_t>());
    });
    sum_blocks_in_order(gatt_blocks.data_ptr<scalar_t>(), blocks, H * C,
                        gatt.data_ptr<scalar_t>());
    with_channels(C, [&](auto kc) {
      gatv2_backward_src_kernel<scalar_t, decltype(kc)::value>(
          Ns, H, C, colptr.data_ptr<int64_t>(), row.data_ptr<int64_t>(), cperm.data_ptr<int64_t>(),
          cpos.data_ptr<int64_t>(), xs.data_ptr<scalar_t>(), xt.data_ptr<scalar_t>(), ld, xe_p,
          att.data_ptr<scalar_t>(), static_cast<scalar_t>(slope), drop, lse.data_ptr<scalar_t>(),
          gout.data_ptr<scalar_t>(), dlogit.data_ptr<scalar_t>(), gxs.data_ptr<scalar_t>(),
          vs.has_value() ? gvs.data_ptr<scalar_t>() : nullptr);
    });
  });
  return {gxs, gxt, gxe, gatt, gvs, gpair};
}

}  // namespace

void masked_scale(const at::Tensor& src, const at::Tensor& keep, double scale, at::Tensor& out);
void bernoulli_mask(at::Tensor& keep, double keep_prob, int64_t seed);
bool huge_pages_install(int64_t min_bytes);
bool huge_pages_remove();
bool huge_pages_raw_roundtrip(int64_t n);
std::tuple<bool, int64_t, int64_t, int64_t, int64_t> huge_pages_stats();

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("masked_scale", &masked_scale, "out = src * (keep * scale) (masked_scale.cpp)");
  m.def("bernoulli_mask", &bernoulli_mask, "uint8 keep-mask from Philox4x32-10 (masked_scale.cpp)");
  m.def("huge_pages_install", &huge_pages_install, "put the huge-page CPU allocator in place (huge_pages.cpp)");
  m.def("huge_pages_remove", &huge_pages_remove, "put the previous CPU allocator back (huge_pages.cpp)");
  m.def("huge_pages_raw_roundtrip", &huge_pages_raw_roundtrip, "raw allocate/free (tests)");
  m.def("huge_pages_stats", &huge_pages_stats, "(in place, min_bytes, live blocks, live bytes, served)");
  m.def("gat_forward", &gat_forward, "fused GAT attention, forward");
  m.def("gat_backward", &gat_backward, "fused GAT attention, backward");
  m.def("gatv2_forward", &gatv2_forward, "fused GATv2 attention, forward");
  m.def("gatv2_backward", &gatv2_backward, "fused GATv2 attention, backward");
}
