// Fused graph attention on destination-sorted CSR (GAT and GATv2), forward and backward.
//
// Notation (see gatkit/ops/fused.py for the full equations):
//   CSR over destinations: rowptr [N_t + 1], col [E] (source j of the p-th sorted edge),
//   perm [E] (user edge id of the p-th sorted edge). CSC over sources: colptr [N_s + 1],
//   row [E] (destination i), cperm [E] (user edge id). Per-edge tensors ([E, H] and
//   [E, H, C]) are indexed by the user edge id, so alpha comes back in the user's order.
//
// Forward, one destination i per iteration, heads h, online (running-max) softmax:
//   l_e = logit of edge e = j -> i;  m <- max(m, l_e);  s = sum exp(l_e - m);
//   acc = sum exp(l_e - m) * d_e * v_j;  out_i = acc / s;  alpha_e = exp(l_e - m) / s,
// where d_e is the attention-dropout scale (0 or 1 / (1 - p); 1 without dropout).
// Backward recomputes the logits' inputs per edge; nothing of size E * H * C is read
// from a saved tensor. Source gradients are summed in a second pass over the CSC so that
// every output row is written by one thread only (no atomics). GATv2's gradient of the
// attention vector is summed per thread (dynamic schedule): its last bits can vary by run.

#include <torch/extension.h>

#include <omp.h>

#include <cmath>
#include <limits>
#include <optional>
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

// Ask for row `row` of a [rows, width] array ahead of use: the gathers of source rows in
// random order are bound by memory latency, not bandwidth.
template <typename T>
inline void prefetch_row(const T* base, int64_t row, int64_t width) {
  const T* r = base + row * width;
  for (int64_t k = 0; k < width; k += kLine / static_cast<int64_t>(sizeof(T))) {
    __builtin_prefetch(r + k);
  }
}

template <typename T>
const T* opt_ptr(const std::optional<Tensor>& t) {
  return (t.has_value() && t->defined()) ? t->data_ptr<T>() : nullptr;
}

// ---------------------------------------------------------------- shared softmax step --
// Online softmax update of head h for a new logit; rescales acc[0..C) when the max grows.
template <typename T>
inline T online_step(T logit, T& m, T& s, T* acc, int64_t C) {
  if (logit > m) {
    const T r = std::isinf(m) ? T(0) : std::exp(m - logit);
    s *= r;
    for (int64_t c = 0; c < C; ++c) acc[c] *= r;
    m = logit;
  }
  const T w = std::exp(logit - m);
  s += w;
  return w;
}

// Finish destination i: out = acc / s, alpha_e = exp(l_e - m) / s (alpha holds l_e).
template <typename T>
inline void finish_row(int64_t i, int64_t H, int64_t C, const int64_t* rowptr,
                       const int64_t* perm, const T* m, const T* s, const T* acc, T* out,
                       T* alpha) {
  for (int64_t h = 0; h < H; ++h) {
    const T inv = s[h] > T(0) ? T(1) / s[h] : T(0);
    for (int64_t c = 0; c < C; ++c) out[(i * H + h) * C + c] = acc[h * C + c] * inv;
  }
  for (int64_t p = rowptr[i]; p < rowptr[i + 1]; ++p) {
    T* a = alpha + perm[p] * H;
    for (int64_t h = 0; h < H; ++h) a[h] = std::exp(a[h] - m[h]) / s[h];
  }
}

// ------------------------------------------------------------------------------ GAT ----
// l_e[h] = LeakyReLU(ss[j, h] + sd[i, h] + es[e, h]); out_i = sum_e alpha_e d_e wh[j].
template <typename T>
void gat_forward_kernel(int64_t Nt, int64_t H, int64_t C, const int64_t* rowptr,
                        const int64_t* col, const int64_t* perm, const T* ss, const T* sd,
                        const T* es, const T* wh, T slope, const T* scale, T* out, T* alpha) {
  const int64_t num_edges = rowptr[Nt];
#pragma omp parallel
  {
    std::vector<T> m(H), s(H), acc(H * C);
#pragma omp for schedule(dynamic, kRowsPerTask)
    for (int64_t i = 0; i < Nt; ++i) {
      std::fill(m.begin(), m.end(), -std::numeric_limits<T>::infinity());
      std::fill(s.begin(), s.end(), T(0));
      std::fill(acc.begin(), acc.end(), T(0));
      for (int64_t p = rowptr[i]; p < rowptr[i + 1]; ++p) {
        const int64_t j = col[p], e = perm[p];
        if (p + kPrefetch < num_edges) prefetch_row(wh, col[p + kPrefetch], H * C);
        const T* v = wh + j * H * C;
        for (int64_t h = 0; h < H; ++h) {
          T pre = ss[j * H + h] + sd[i * H + h];
          if (es) pre += es[e * H + h];
          const T logit = leaky(pre, slope);
          alpha[e * H + h] = logit;
          T* a = acc.data() + h * C;
          T w = online_step(logit, m[h], s[h], a, C);
          if (scale) w *= scale[e * H + h];
          for (int64_t c = 0; c < C; ++c) a[c] += w * v[h * C + c];
        }
      }
      finish_row(i, H, C, rowptr, perm, m.data(), s.data(), acc.data(), out, alpha);
    }
  }
}

// Destination pass: dl_e = alpha_e (g_e - sum_k alpha_k g_k) with
// g_e = d_e <gout_i, wh_j> + galpha_e; dpre_e = dl_e * LeakyReLU'(pre_e); gsd_i = sum dpre.
template <typename T>
void gat_backward_dst_kernel(int64_t Nt, int64_t H, int64_t C, const int64_t* rowptr,
                             const int64_t* col, const int64_t* perm, const T* ss, const T* sd,
                             const T* es, const T* wh, T slope, const T* scale, const T* alpha,
                             const T* gout, const T* galpha, T* dpre, T* gsd) {
  const int64_t num_edges = rowptr[Nt];
#pragma omp parallel
  {
    std::vector<T> dot_sum(H);
#pragma omp for schedule(dynamic, kRowsPerTask)
    for (int64_t i = 0; i < Nt; ++i) {
      std::fill(dot_sum.begin(), dot_sum.end(), T(0));
      const T* g = gout + i * H * C;
      for (int64_t p = rowptr[i]; p < rowptr[i + 1]; ++p) {
        const int64_t j = col[p], e = perm[p];
        if (p + kPrefetch < num_edges) prefetch_row(wh, col[p + kPrefetch], H * C);
        const T* v = wh + j * H * C;
        for (int64_t h = 0; h < H; ++h) {
          T d = 0;
          for (int64_t c = 0; c < C; ++c) d += g[h * C + c] * v[h * C + c];
          if (scale) d *= scale[e * H + h];
          if (galpha) d += galpha[e * H + h];
          dpre[e * H + h] = d;
          dot_sum[h] += alpha[e * H + h] * d;
        }
      }
      for (int64_t h = 0; h < H; ++h) gsd[i * H + h] = T(0);
      for (int64_t p = rowptr[i]; p < rowptr[i + 1]; ++p) {
        const int64_t j = col[p], e = perm[p];
        for (int64_t h = 0; h < H; ++h) {
          T pre = ss[j * H + h] + sd[i * H + h];
          if (es) pre += es[e * H + h];
          const T dl = alpha[e * H + h] * (dpre[e * H + h] - dot_sum[h]);
          const T dp = dl * leaky_grad(pre, slope);
          dpre[e * H + h] = dp;
          gsd[i * H + h] += dp;
        }
      }
    }
  }
}

// Source pass: gwh_j = sum_e alpha_e d_e gout_i, gss_j = sum_e dpre_e.
template <typename T>
void gat_backward_src_kernel(int64_t Ns, int64_t H, int64_t C, const int64_t* colptr,
                             const int64_t* row, const int64_t* cperm, const T* scale,
                             const T* alpha, const T* gout, const T* dpre, T* gwh, T* gss) {
  const int64_t num_edges = colptr[Ns];
#pragma omp parallel for schedule(dynamic, kRowsPerTask)
  for (int64_t j = 0; j < Ns; ++j) {
    T* gv = gwh + j * H * C;
    for (int64_t k = 0; k < H * C; ++k) gv[k] = T(0);
    for (int64_t h = 0; h < H; ++h) gss[j * H + h] = T(0);
    for (int64_t q = colptr[j]; q < colptr[j + 1]; ++q) {
      const int64_t i = row[q], e = cperm[q];
      if (q + kPrefetch < num_edges) prefetch_row(gout, row[q + kPrefetch], H * C);
      const T* g = gout + i * H * C;
      for (int64_t h = 0; h < H; ++h) {
        T a = alpha[e * H + h];
        if (scale) a *= scale[e * H + h];
        for (int64_t c = 0; c < C; ++c) gv[h * C + c] += a * g[h * C + c];
        gss[j * H + h] += dpre[e * H + h];
      }
    }
  }
}

// ---------------------------------------------------------------------------- GATv2 ----
// z_e = xs[j] + xt[i] (+ xe[e]) per head; l_e[h] = sum_c att[h, c] LeakyReLU(z_e[h, c]).
template <typename T>
inline T gatv2_logit(const T* xs_j, const T* xt_i, const T* xe_e, const T* att_h, int64_t C,
                     T slope) {
  T l = 0;
  if (xe_e) {
    for (int64_t c = 0; c < C; ++c) l += att_h[c] * leaky(xs_j[c] + xt_i[c] + xe_e[c], slope);
  } else {
    for (int64_t c = 0; c < C; ++c) l += att_h[c] * leaky(xs_j[c] + xt_i[c], slope);
  }
  return l;
}

template <typename T>
void gatv2_forward_kernel(int64_t Nt, int64_t H, int64_t C, const int64_t* rowptr,
                          const int64_t* col, const int64_t* perm, const T* xs, const T* xt,
                          const T* xe, const T* att, const T* vs, T slope, const T* scale,
                          T* out, T* alpha) {
  const int64_t num_edges = rowptr[Nt];
#pragma omp parallel
  {
    std::vector<T> m(H), s(H), acc(H * C);
#pragma omp for schedule(dynamic, kRowsPerTask)
    for (int64_t i = 0; i < Nt; ++i) {
      std::fill(m.begin(), m.end(), -std::numeric_limits<T>::infinity());
      std::fill(s.begin(), s.end(), T(0));
      std::fill(acc.begin(), acc.end(), T(0));
      const T* xt_i = xt + i * H * C;
      const int64_t row_end = rowptr[i + 1];
      for (int64_t p = rowptr[i]; p < row_end; ++p) {
        const int64_t j = col[p], e = perm[p];
        if (p + kPrefetch < num_edges) prefetch_row(xs, col[p + kPrefetch], H * C);
        const T* xs_j = xs + j * H * C;
        const T* v_j = (vs ? vs : xs) + j * H * C;
        const T* xe_e = xe ? xe + e * H * C : nullptr;
        for (int64_t h = 0; h < H; ++h) {
          const T logit = gatv2_logit(xs_j + h * C, xt_i + h * C,
                                      xe_e ? xe_e + h * C : nullptr, att + h * C, C, slope);
          alpha[e * H + h] = logit;
          T* a = acc.data() + h * C;
          T w = online_step(logit, m[h], s[h], a, C);
          if (scale) w *= scale[e * H + h];
          for (int64_t c = 0; c < C; ++c) a[c] += w * v_j[h * C + c];
        }
      }
      finish_row(i, H, C, rowptr, perm, m.data(), s.data(), acc.data(), out, alpha);
    }
  }
}

// Destination pass: dl_e as for GAT; dz_e[h, c] = dl_e[h] att[h, c] LeakyReLU'(z_e[h, c]);
// gxt_i = sum_e dz_e; gxe_e = dz_e; gatt[h, c] = sum_e dl_e[h] LeakyReLU(z_e[h, c]) (per
// thread, summed by the caller). dl is written to dlogit [E, H] for the source pass.
template <typename T>
void gatv2_backward_dst_kernel(int64_t Nt, int64_t H, int64_t C, const int64_t* rowptr,
                               const int64_t* col, const int64_t* perm, const T* xs,
                               const T* xt, const T* xe, const T* att, const T* vs, T slope,
                               const T* scale, const T* alpha, const T* gout, const T* galpha,
                               T* dlogit, T* gxt, T* gxe, T* gatt_threads) {
  const int64_t num_edges = rowptr[Nt];
#pragma omp parallel
  {
    std::vector<T> dot_sum(H);
    T* gatt = gatt_threads + omp_get_thread_num() * H * C;
#pragma omp for schedule(dynamic, kRowsPerTask)
    for (int64_t i = 0; i < Nt; ++i) {
      std::fill(dot_sum.begin(), dot_sum.end(), T(0));
      const T* g = gout + i * H * C;
      const T* xt_i = xt + i * H * C;
      T* gxt_i = gxt + i * H * C;
      for (int64_t k = 0; k < H * C; ++k) gxt_i[k] = T(0);
      for (int64_t p = rowptr[i]; p < rowptr[i + 1]; ++p) {
        const int64_t j = col[p], e = perm[p];
        if (p + kPrefetch < num_edges) prefetch_row(vs ? vs : xs, col[p + kPrefetch], H * C);
        const T* v = (vs ? vs : xs) + j * H * C;
        for (int64_t h = 0; h < H; ++h) {
          T d = 0;
          for (int64_t c = 0; c < C; ++c) d += g[h * C + c] * v[h * C + c];
          if (scale) d *= scale[e * H + h];
          if (galpha) d += galpha[e * H + h];
          dlogit[e * H + h] = d;
          dot_sum[h] += alpha[e * H + h] * d;
        }
      }
      for (int64_t p = rowptr[i]; p < rowptr[i + 1]; ++p) {
        const int64_t j = col[p], e = perm[p];
        const T* xs_j = xs + j * H * C;
        const T* xe_e = xe ? xe + e * H * C : nullptr;
        T* gxe_e = gxe ? gxe + e * H * C : nullptr;
        for (int64_t h = 0; h < H; ++h) {
          const T dl = alpha[e * H + h] * (dlogit[e * H + h] - dot_sum[h]);
          dlogit[e * H + h] = dl;
          for (int64_t c = 0; c < C; ++c) {
            const int64_t k = h * C + c;
            const T z = xs_j[k] + xt_i[k] + (xe_e ? xe_e[k] : T(0));
            const T dz = dl * att[k] * leaky_grad(z, slope);
            gatt[k] += dl * leaky(z, slope);
            gxt_i[k] += dz;
            if (gxe_e) gxe_e[k] = dz;
          }
        }
      }
    }
  }
}

// Source pass: gxs_j = sum_e (alpha_e d_e gout_i + dz_e), dz_e recomputed from dlogit. With
// separate values vs (messages other than xs), the first term goes to gvs_j instead.
template <typename T>
void gatv2_backward_src_kernel(int64_t Ns, int64_t H, int64_t C, const int64_t* colptr,
                               const int64_t* row, const int64_t* cperm, const T* xs,
                               const T* xt, const T* xe, const T* att, T slope, const T* scale,
                               const T* alpha, const T* gout, const T* dlogit, T* gxs, T* gvs) {
  const int64_t num_edges = colptr[Ns];
#pragma omp parallel for schedule(dynamic, kRowsPerTask)
  for (int64_t j = 0; j < Ns; ++j) {
    const T* xs_j = xs + j * H * C;
    T* gx = gxs + j * H * C;
    T* gv = gvs ? gvs + j * H * C : gx;  // separate values: their gradient apart
    for (int64_t k = 0; k < H * C; ++k) gx[k] = gv[k] = T(0);
    for (int64_t q = colptr[j]; q < colptr[j + 1]; ++q) {
      const int64_t i = row[q], e = cperm[q];
      if (q + kPrefetch < num_edges) {
        prefetch_row(gout, row[q + kPrefetch], H * C);
        prefetch_row(xt, row[q + kPrefetch], H * C);
      }
      const T* g = gout + i * H * C;
      const T* xt_i = xt + i * H * C;
      const T* xe_e = xe ? xe + e * H * C : nullptr;
      for (int64_t h = 0; h < H; ++h) {
        T a = alpha[e * H + h];
        if (scale) a *= scale[e * H + h];
        const T dl = dlogit[e * H + h];
        for (int64_t c = 0; c < C; ++c) {
          const int64_t k = h * C + c;
          const T z = xs_j[k] + xt_i[k] + (xe_e ? xe_e[k] : T(0));
          gv[k] += a * g[k];
          gx[k] += dl * att[k] * leaky_grad(z, slope);
        }
      }
    }
  }
}

// ------------------------------------------------------------------------ bindings ----
std::vector<Tensor> gat_forward(Tensor rowptr, Tensor col, Tensor perm, Tensor ss, Tensor sd,
                                std::optional<Tensor> es, Tensor wh, double slope,
                                std::optional<Tensor> scale) {
  const int64_t Nt = sd.size(0), H = wh.size(1), C = wh.size(2), E = col.size(0);
  auto out = at::empty({Nt, H, C}, wh.options());
  auto alpha = at::empty({E, H}, wh.options());
  AT_DISPATCH_FLOATING_TYPES(wh.scalar_type(), "gat_forward", [&] {
    gat_forward_kernel<scalar_t>(Nt, H, C, rowptr.data_ptr<int64_t>(), col.data_ptr<int64_t>(),
                                 perm.data_ptr<int64_t>(), ss.data_ptr<scalar_t>(),
                                 sd.data_ptr<scalar_t>(), opt_ptr<scalar_t>(es),
                                 wh.data_ptr<scalar_t>(), static_cast<scalar_t>(slope),
                                 opt_ptr<scalar_t>(scale), out.data_ptr<scalar_t>(),
                                 alpha.data_ptr<scalar_t>());
  });
  return {out, alpha};
}

std::vector<Tensor> gat_backward(Tensor rowptr, Tensor col, Tensor perm, Tensor colptr,
                                 Tensor row, Tensor cperm, Tensor ss, Tensor sd,
                                 std::optional<Tensor> es, Tensor wh, double slope,
                                 std::optional<Tensor> scale, Tensor alpha, Tensor gout,
                                 std::optional<Tensor> galpha) {
  const int64_t Nt = sd.size(0), Ns = ss.size(0), H = wh.size(1), C = wh.size(2);
  auto dpre = at::empty_like(alpha);
  auto gsd = at::empty_like(sd);
  auto gss = at::empty_like(ss);
  auto gwh = at::empty_like(wh);
  AT_DISPATCH_FLOATING_TYPES(wh.scalar_type(), "gat_backward", [&] {
    const scalar_t* sc = opt_ptr<scalar_t>(scale);
    gat_backward_dst_kernel<scalar_t>(
        Nt, H, C, rowptr.data_ptr<int64_t>(), col.data_ptr<int64_t>(), perm.data_ptr<int64_t>(),
        ss.data_ptr<scalar_t>(), sd.data_ptr<scalar_t>(), opt_ptr<scalar_t>(es),
        wh.data_ptr<scalar_t>(), static_cast<scalar_t>(slope), sc, alpha.data_ptr<scalar_t>(),
        gout.data_ptr<scalar_t>(), opt_ptr<scalar_t>(galpha), dpre.data_ptr<scalar_t>(),
        gsd.data_ptr<scalar_t>());
    gat_backward_src_kernel<scalar_t>(Ns, H, C, colptr.data_ptr<int64_t>(),
                                      row.data_ptr<int64_t>(), cperm.data_ptr<int64_t>(), sc,
                                      alpha.data_ptr<scalar_t>(), gout.data_ptr<scalar_t>(),
                                      dpre.data_ptr<scalar_t>(), gwh.data_ptr<scalar_t>(),
                                      gss.data_ptr<scalar_t>());
  });
  return {gss, gsd, dpre, gwh};
}

std::vector<Tensor> gatv2_forward(Tensor rowptr, Tensor col, Tensor perm, Tensor xs, Tensor xt,
                                  std::optional<Tensor> xe, Tensor att, double slope,
                                  std::optional<Tensor> scale, std::optional<Tensor> vs) {
  const int64_t Nt = xt.size(0), H = xs.size(1), C = xs.size(2), E = col.size(0);
  auto out = at::empty({Nt, H, C}, xs.options());
  auto alpha = at::empty({E, H}, xs.options());
  AT_DISPATCH_FLOATING_TYPES(xs.scalar_type(), "gatv2_forward", [&] {
    gatv2_forward_kernel<scalar_t>(
        Nt, H, C, rowptr.data_ptr<int64_t>(), col.data_ptr<int64_t>(), perm.data_ptr<int64_t>(),
        xs.data_ptr<scalar_t>(), xt.data_ptr<scalar_t>(), opt_ptr<scalar_t>(xe),
        att.data_ptr<scalar_t>(), opt_ptr<scalar_t>(vs), static_cast<scalar_t>(slope),
        opt_ptr<scalar_t>(scale), out.data_ptr<scalar_t>(), alpha.data_ptr<scalar_t>());
  });
  return {out, alpha};
}

std::vector<Tensor> gatv2_backward(Tensor rowptr, Tensor col, Tensor perm, Tensor colptr,
                                   Tensor row, Tensor cperm, Tensor xs, Tensor xt,
                                   std::optional<Tensor> xe, Tensor att, double slope,
                                   std::optional<Tensor> scale, Tensor alpha, Tensor gout,
                                   std::optional<Tensor> galpha, bool need_gxe,
                                   std::optional<Tensor> vs) {
  const int64_t Nt = xt.size(0), Ns = xs.size(0), H = xs.size(1), C = xs.size(2);
  const int64_t E = alpha.size(0);
  const int64_t threads = omp_get_max_threads();
  auto dlogit = at::empty_like(alpha);
  auto gxt = at::empty_like(xt);
  auto gxs = at::empty_like(xs);
  auto gxe = need_gxe ? at::empty({E, H, C}, xs.options()) : Tensor();
  auto gvs = vs.has_value() ? at::empty_like(xs) : Tensor();
  auto gatt_threads = at::zeros({threads, H, C}, xs.options());
  AT_DISPATCH_FLOATING_TYPES(xs.scalar_type(), "gatv2_backward", [&] {
    const scalar_t* sc = opt_ptr<scalar_t>(scale);
    const scalar_t* xe_p = opt_ptr<scalar_t>(xe);
    gatv2_backward_dst_kernel<scalar_t>(
        Nt, H, C, rowptr.data_ptr<int64_t>(), col.data_ptr<int64_t>(), perm.data_ptr<int64_t>(),
        xs.data_ptr<scalar_t>(), xt.data_ptr<scalar_t>(), xe_p, att.data_ptr<scalar_t>(),
        opt_ptr<scalar_t>(vs), static_cast<scalar_t>(slope), sc, alpha.data_ptr<scalar_t>(),
        gout.data_ptr<scalar_t>(), opt_ptr<scalar_t>(galpha), dlogit.data_ptr<scalar_t>(), gxt.data_ptr<scalar_t>(),
        need_gxe ? gxe.data_ptr<scalar_t>() : nullptr, gatt_threads.data_ptr<scalar_t>());
    gatv2_backward_src_kernel<scalar_t>(
        Ns, H, C, colptr.data_ptr<int64_t>(), row.data_ptr<int64_t>(), cperm.data_ptr<int64_t>(),
        xs.data_ptr<scalar_t>(), xt.data_ptr<scalar_t>(), xe_p, att.data_ptr<scalar_t>(),
        static_cast<scalar_t>(slope), sc, alpha.data_ptr<scalar_t>(), gout.data_ptr<scalar_t>(),
        dlogit.data_ptr<scalar_t>(), gxs.data_ptr<scalar_t>(),
        vs.has_value() ? gvs.data_ptr<scalar_t>() : nullptr);
  });
  return {gxs, gxt, gxe, gatt_threads.sum(0), gvs};
}

}  // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("gat_forward", &gat_forward, "fused GAT attention, forward");
  m.def("gat_backward", &gat_backward, "fused GAT attention, backward");
  m.def("gatv2_forward", &gatv2_forward, "fused GATv2 attention, forward");
  m.def("gatv2_backward", &gatv2_backward, "fused GATv2 attention, backward");
}
