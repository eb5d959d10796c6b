// Image file -> padded tensor -> backend -> cropped result -> PNG (+ raw .npy).
#pragma once

#include <string>

#include "dmphn/backend.h"
#include "dmphn/image.h"
#include "dmphn/tensor.h"

namespace dmphn {

struct Timing {
  double mean_ms = 0.0;
  double min_ms = 0.0;
  int runs = 0;
};

struct DeblurResult {
  Tensor output;           // (1, 3, H, W) cropped to the input size, not clamped
  int64_t padded_height = 0;
  int64_t padded_width = 0;
  Timing timing;
};

// Pad ``image`` to the backend's size block, check the artifact's static input shape,
// run ``warmup`` untimed and ``repeat`` (>= 1) timed inferences, crop back.
DeblurResult deblur(Backend& backend, const Image& image, int repeat = 1, int warmup = 0);

}  // namespace dmphn
