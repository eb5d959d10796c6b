#include "dmphn/geometry.h"

#include <cstring>

#include "dmphn/errors.h"

namespace dmphn {
namespace {

int64_t round_up(int64_t size, int64_t block) { return (size + block - 1) / block * block; }

// Source index of padded position ``i`` along a side of length ``n``.
int64_t source_index(int64_t i, int64_t n, bool reflect) {
  if (i < n) return i;
  return reflect ? 2 * (n - 1) - i : n - 1;
}

}  // namespace

std::array<int64_t, 2> padded_size(int64_t height, int64_t width, std::array<int64_t, 2> block) {
  return {round_up(height, block[0]), round_up(width, block[1])};
}

Tensor pad_to_block(const Tensor& x, std::array<int64_t, 2> block) {
  if (x.shape.size() != 4) throw Error("pad_to_block expects (N, C, H, W), got " + shape_string(x.shape));
  const int64_t n = x.shape[0], c = x.shape[1], h = x.shape[2], w = x.shape[3];
  const auto [ph, pw] = padded_size(h, w, block);
  if (ph == h && pw == w) return x;
  // Same rule as geometry.pad_to_block: one mode for both axes.
  const bool reflect = (pw - w) < w && (ph - h) < h;
  Tensor out({n, c, ph, pw});
  for (int64_t plane = 0; plane < n * c; ++plane) {
    const float* src = x.data.data() + plane * h * w;
    float* dst = out.data.data() + plane * ph * pw;
    for (int64_t row = 0; row < ph; ++row) {
      const float* src_row = src + source_index(row, h, reflect) * w;
      float* dst_row = dst + row * pw;
      std::memcpy(dst_row, src_row, static_cast<size_t>(w) * sizeof(float));
      for (int64_t col = w; col < pw; ++col) dst_row[col] = src_row[source_index(col, w, reflect)];
    }
  }
  return out;
}

Tensor crop_to(const Tensor& x, int64_t height, int64_t width) {
  if (x.shape.size() != 4) throw Error("crop_to expects (N, C, H, W), got " + shape_string(x.shape));
  const int64_t n = x.shape[0], c = x.shape[1], h = x.shape[2], w = x.shape[3];
  if (height > h || width > w) {
    throw Error("cannot crop " + shape_string(x.shape) + " to " + std::to_string(height) + "x" + std::to_string(width));
  }
  if (height == h && width == w) return x;
  Tensor out({n, c, height, width});
  for (int64_t plane = 0; plane < n * c; ++plane) {
    for (int64_t row = 0; row < height; ++row) {
      std::memcpy(out.data.data() + (plane * height + row) * width, x.data.data() + (plane * h + row) * w,
                  static_cast<size_t>(width) * sizeof(float));
    }
  }
  return out;
}

}  // namespace dmphn
