// Dropout by a one-byte mask: out[k] = src[k] * (keep[k] * scale), in one pass.
//
// PyTorch multiplies a float tensor by a uint8 or bool mask through a float copy of the mask
// (or a non-vectorised where); this loop reads the source, the byte mask and writes the
// result once, so gatkit.nn.lean_dropout (and the recipes that form its output again in the
// backward pass) cost no more than F.dropout's multiply. `scale` is 1 / (1 - p) as
// F.dropout forms it, and keep[k] * scale is exactly F.dropout's noise (0 or scale), so the
// result is bitwise F.dropout's (a dropped NaN stays NaN, a dropped -x gives -0, as there).

#include <torch/extension.h>

#include <ATen/Parallel.h>

#include <algorithm>
#include <cstdint>

namespace {

template <typename T>
void masked_scale_loop(const T* src, const uint8_t* keep, T* out, int64_t n, T scale) {
  at::parallel_for(0, n, 1 << 15, [&](int64_t begin, int64_t end) {
#pragma omp simd
    for (int64_t k = begin; k < end; ++k) {
      out[k] = src[k] * (static_cast<T>(keep[k]) * scale);  // F.dropout's src * noise
    }
  });
}

}  // namespace

// `out` may be `src` itself (in place). All three contiguous, same number of elements.
void masked_scale(const at::Tensor& src, const at::Tensor& keep, double scale, at::Tensor& out) {
  TORCH_CHECK(src.is_contiguous() && keep.is_contiguous() && out.is_contiguous(),
              "masked_scale: tensors must be contiguous");
  TORCH_CHECK(keep.scalar_type() == at::kByte, "masked_scale: the mask must be uint8");
  TORCH_CHECK(src.numel() == keep.numel() && src.numel() == out.numel(),
              "masked_scale: sizes differ");
  TORCH_CHECK(src.scalar_type() == out.scalar_type(), "masked_scale: dtypes differ");
  AT_DISPATCH_FLOATING_TYPES(src.scalar_type(), "masked_scale", [&] {
    masked_scale_loop<scalar_t>(src.data_ptr<scalar_t>(), keep.data_ptr<uint8_t>(),
                                out.data_ptr<scalar_t>(), src.numel(),
                                static_cast<scalar_t>(scale));
  });
}

// ---------------------------------------------------------------------------------------
// Bernoulli keep-masks from a counter-based generator (Philox4x32-10, Salmon et al., SC'11).
//
// keep[k] = 1 with probability keep_prob: the k-th 32-bit output of Philox keyed by `seed`
// at counter k / 4 is compared with round(keep_prob * 2^32). Each output depends only on
// (seed, k), so the mask is the same for any number of threads and is drawn
// in parallel, where torch's CPU bernoulli_ draws one element after another.

namespace {

// Philox4x32-10 for kLanes consecutive counter blocks at once, structure of arrays, written
// so that the compiler vectorizes the rounds across the lanes (the key is the same for every
// block). out[4 l + i] = (word i of block first_block + l) < threshold.
constexpr int64_t kLanes = 16;

inline void philox_lanes(int64_t first_block, uint64_t seed, uint32_t threshold,
                         uint8_t* out) {
  constexpr uint32_t kM0 = 0xD2511F53u, kM1 = 0xCD9E8D57u;
  constexpr uint32_t kW0 = 0x9E3779B9u, kW1 = 0xBB67AE85u;
  uint32_t c0[kLanes], c1[kLanes], c2[kLanes], c3[kLanes];
  for (int64_t l = 0; l < kLanes; ++l) {
    const uint64_t b = static_cast<uint64_t>(first_block + l);
    c0[l] = static_cast<uint32_t>(b);
    c1[l] = static_cast<uint32_t>(b >> 32);
    c2[l] = 0u;
    c3[l] = 0u;
  }
  uint32_t k0 = static_cast<uint32_t>(seed), k1 = static_cast<uint32_t>(seed >> 32);
  for (int round = 0; round < 10; ++round) {
#pragma omp simd
    for (int64_t l = 0; l < kLanes; ++l) {
      const uint64_t p0 = static_cast<uint64_t>(kM0) * c0[l];
      const uint64_t p1 = static_cast<uint64_t>(kM1) * c2[l];
      const uint32_t n0 = static_cast<uint32_t>(p1 >> 32) ^ c1[l] ^ k0;
      const uint32_t n2 = static_cast<uint32_t>(p0 >> 32) ^ c3[l] ^ k1;
      c1[l] = static_cast<uint32_t>(p1);
      c3[l] = static_cast<uint32_t>(p0);
      c0[l] = n0;
      c2[l] = n2;
    }
    k0 += kW0;
    k1 += kW1;
  }
  uint8_t w0[kLanes], w1[kLanes], w2[kLanes], w3[kLanes];
#pragma omp simd
  for (int64_t l = 0; l < kLanes; ++l) {
    w0[l] = c0[l] < threshold;
    w1[l] = c1[l] < threshold;
    w2[l] = c2[l] < threshold;
    w3[l] = c3[l] < threshold;
  }
  for (int64_t l = 0; l < kLanes; ++l) {
    out[4 * l] = w0[l];
    out[4 * l + 1] = w1[l];
    out[4 * l + 2] = w2[l];
    out[4 * l + 3] = w3[l];
  }
}

}  // namespace

void bernoulli_mask(at::Tensor& keep, double keep_prob, int64_t seed) {
  TORCH_CHECK(keep.is_contiguous() && keep.scalar_type() == at::kByte && keep.is_cpu(),
              "bernoulli_mask: the mask must be a contiguous uint8 CPU tensor");
  TORCH_CHECK(keep_prob >= 0.0 && keep_prob <= 1.0, "bernoulli_mask: keep_prob outside [0, 1]");
  uint8_t* out = keep.data_ptr<uint8_t>();
  const int64_t n = keep.numel();
  const double scaled = keep_prob * 4294967296.0;  // 2^32
  const uint64_t threshold = scaled >= 4294967296.0 ? (uint64_t{1} << 32)
                                                    : static_cast<uint64_t>(scaled + 0.5);
  if (threshold >> 32) {  // keep_prob rounds to 1: every word is below 2^32
    std::fill(out, out + n, uint8_t{1});
    return;
  }
  const uint32_t below = static_cast<uint32_t>(threshold);
  const uint64_t useed = static_cast<uint64_t>(seed);
  const int64_t blocks = (n + 3) / 4;
  const int64_t groups = blocks / kLanes;  // whole groups of kLanes blocks, in lanes
  at::parallel_for(0, groups, 1 << 10, [&](int64_t begin, int64_t end) {
    for (int64_t g = begin; g < end; ++g) {
      philox_lanes(g * kLanes, useed, below, out + 4 * kLanes * g);
    }
  });
  const int64_t done = 4 * kLanes * groups;
  if (done < n) {  // the last, partial group: drawn whole, its first n - done entries kept
    uint8_t last[4 * kLanes];
    philox_lanes(groups * kLanes, useed, below, last);
    std::copy(last, last + (n - done), out + done);
  }
}
