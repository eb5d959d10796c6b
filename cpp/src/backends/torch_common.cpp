#include "torch_common.h"

#include <ATen/Context.h>

#include <cstring>

#include "dmphn/errors.h"

namespace dmphn::torch_common {

void disable_tf32() {
  at::globalContext().setAllowTF32CuDNN(false);
  at::globalContext().setAllowTF32CuBLAS(false);
}

c10::Device parse_device(const std::string& device, const std::string& backend) {
  if (device == "cpu") return c10::Device(c10::kCPU);
  if (device == "cuda") {
    if (!at::hasCUDA()) {
      throw Error(backend + " on cuda needs a CUDA build of LibTorch and a GPU; this build/host has none");
    }
    return c10::Device(c10::kCUDA, 0);
  }
  throw Error("unknown device " + device + "; use cpu or cuda");
}

at::Tensor to_torch(const Tensor& tensor, const c10::Device& device) {
  // from_blob does not copy and wants a mutable pointer; the clone below never writes it.
  at::Tensor view = at::from_blob(const_cast<float*>(tensor.data.data()), tensor.shape, at::kFloat);
  return view.to(device, at::kFloat, /*non_blocking=*/false, /*copy=*/true);
}

Tensor from_torch(const at::Tensor& tensor) {
  const at::Tensor host = tensor.detach().to(at::kCPU, at::kFloat).contiguous();
  Tensor out(std::vector<int64_t>(host.sizes().begin(), host.sizes().end()));
  std::memcpy(out.data.data(), host.data_ptr<float>(), out.data.size() * sizeof(float));
  return out;
}

std::string first_line(const std::string& message) {
  const size_t begin = message.find_first_not_of(" \n\r\t");
  if (begin == std::string::npos) return "unknown error";
  return message.substr(begin, message.find('\n', begin) - begin);
}

}  // namespace dmphn::torch_common
