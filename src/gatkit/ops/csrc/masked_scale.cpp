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
