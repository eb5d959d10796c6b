// A float32 tensor in host memory: the currency between the pipeline and the backends.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace dmphn {

struct Tensor {
  std::vector<int64_t> shape;  // NCHW for images: (1, 3, H, W)
  std::vector<float> data;     // row-major (C order), size == numel()

  Tensor() = default;
  explicit Tensor(std::vector<int64_t> shape_);

  int64_t numel() const;
};

// "1x3x104x160"
std::string shape_string(const std::vector<int64_t>& shape);

}  // namespace dmphn
