#include "dmphn/tensor.h"

#include <sstream>

namespace dmphn {

Tensor::Tensor(std::vector<int64_t> shape_) : shape(std::move(shape_)), data(static_cast<size_t>(numel()), 0.0f) {}

int64_t Tensor::numel() const {
  int64_t count = 1;
  for (int64_t size : shape) count *= size;
  return count;
}

std::string shape_string(const std::vector<int64_t>& shape) {
  std::ostringstream text;
  for (size_t i = 0; i < shape.size(); ++i) text << (i ? "x" : "") << shape[i];
  return text.str();
}

}  // namespace dmphn
