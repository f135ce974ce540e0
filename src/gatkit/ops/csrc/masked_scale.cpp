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

inline void philox_round(uint32_t ctr[4], const uint32_t key[2]) {
  constexpr uint32_t kM0 = 0xD2511F53u, kM1 = 0xCD9E8D57u;
  const uint64_t p0 = static_cast<uint64_t>(kM0) * ctr[0];
  const uint64_t p1 = static_cast<uint64_t>(kM1) * ctr[2];
  const uint32_t hi0 = static_cast<uint32_t>(p0 >> 32), lo0 = static_cast<uint32_t>(p0);
  const uint32_t hi1 = static_cast<uint32_t>(p1 >> 32), lo1 = static_cast<uint32_t>(p1);
  ctr[0] = hi1 ^ ctr[1] ^ key[0];
  ctr[1] = lo1;
  ctr[2] = hi0 ^ ctr[3] ^ key[1];
  ctr[3] = lo0;
}

inline void philox4x32_10(uint32_t ctr[4], uint32_t key[2]) {
  constexpr uint32_t kW0 = 0x9E3779B9u, kW1 = 0xBB67AE85u;
  for (int round = 0; round < 9; ++round) {
    philox_round(ctr, key);
    key[0] += kW0;
    key[1] += kW1;
  }
  philox_round(ctr, key);
}


// kLanes counter blocks at once, structure of arrays: the same Philox4x32-10 rounds as
// philox4x32_10, written so that the compiler vectorizes them across the lanes (the key is
// the same for every block). out[4 (b + l) + i] = (word i of block b + l) < threshold.
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
  for (int64_t b = groups * kLanes; b < blocks; ++b) {  // the last blocks, one by one
    uint32_t ctr[4] = {static_cast<uint32_t>(b), static_cast<uint32_t>(b >> 32), 0u, 0u};
    uint32_t key[2] = {static_cast<uint32_t>(useed), static_cast<uint32_t>(useed >> 32)};
    philox4x32_10(ctr, key);
    const int64_t base = 4 * b;
    const int64_t count = n - base < 4 ? n - base : 4;
    for (int64_t i = 0; i < count; ++i) out[base + i] = ctr[i] < below ? 1 : 0;
  }
}
