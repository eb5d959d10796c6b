// What the two LibTorch backends (TorchScript, AOTInductor) share: device choice and
// host Tensor <-> at::Tensor copies.
#pragma once

#include <ATen/ATen.h>
#include <c10/core/Device.h>

#include <string>

#include "dmphn/tensor.h"

namespace dmphn::torch_common {

// Turns off TF32 in cuDNN convolutions and cuBLAS matmuls for this process. LibTorch allows
// TF32 convolutions by default, and an AOTInductor package's convolutions read that switch at
// run time, so an fp32 package would otherwise run TF32 on CUDA (the Python runners do the same).
void disable_tf32();
// "cpu" or "cuda"; throws dmphn::Error when CUDA is asked for but absent.
c10::Device parse_device(const std::string& device, const std::string& backend);
// A copy on ``device``: the caller's buffer is never aliased.
at::Tensor to_torch(const Tensor& tensor, const c10::Device& device);
// float32, host, contiguous copy.
Tensor from_torch(const at::Tensor& tensor);
// First line of a c10::Error / std::exception message (LibTorch appends C++ context).
std::string first_line(const std::string& message);

}  // namespace dmphn::torch_common
