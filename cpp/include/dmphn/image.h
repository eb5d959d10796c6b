// Image files <-> float RGB, matching dmphn_core/imageio.py (read_image / write_image).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "dmphn/tensor.h"

namespace dmphn {

// Float RGB image, (H, W, 3) interleaved, values in [0, 1] after reading.
struct Image {
  int64_t height = 0;
  int64_t width = 0;
  std::vector<float> rgb;
};

// PNG (1/2/4/8/16-bit grey, grey+alpha, RGB, RGBA, palette) or JPEG (8-bit grey/RGB, when
// built with libjpeg). Grey is repeated to 3 channels, alpha is dropped (not composited),
// 16-bit is scaled by 1/65535: what OpenCV's IMREAD_UNCHANGED + cvtColor do in Python.
// Throws dmphn::Error for a missing, corrupt or unsupported file.
Image read_image(const std::string& path);

// Write 8-bit RGB PNG: clip to [0, 1], then uint8(x * 255 + 0.5) in float32, the rounding
// of write_image. Non-finite values are an error. Written to a temporary file beside
// ``path`` and renamed: ``path`` is either complete or untouched.
void write_png(const std::string& path, const Image& image);

// (H, W, 3) <-> (1, 3, H, W)
Tensor image_to_tensor(const Image& image);
Image tensor_to_image(const Tensor& tensor);

// Whether this build reads JPEG files.
bool jpeg_supported();

}  // namespace dmphn
