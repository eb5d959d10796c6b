// One interface for every runtime (like runtimes/ in Python): load an artifact, report
// its size block, run a float32 NCHW tensor. One class per backend, one file each under
// src/backends/; a backend is compiled only when its SDK was found at configure time.
#pragma once

#include <array>
#include <memory>
#include <string>
#include <vector>

#include "dmphn/metadata.h"
#include "dmphn/tensor.h"

namespace dmphn {

class Backend {
 public:
  virtual ~Backend() = default;

  virtual std::string name() const = 0;
  // Load the artifact at ``path`` for ``device`` ("cpu" or "cuda") and read its metadata.
  virtual void load(const std::string& path, const std::string& device) = 0;
  // (1, 3, H, W) float32 RGB in [0, 1] -> (1, 3, H, W) float32, not clamped.
  // Host memory in and out; a GPU backend copies both ways (and waits for the result).
  virtual Tensor infer(const Tensor& input) = 0;

  const ArtifactMetadata& metadata() const { return metadata_; }
  std::array<int64_t, 2> size_block() const { return metadata_.size_block_hw; }

 protected:
  ArtifactMetadata metadata_;
};

// Backends this build holds, in a fixed order: torchscript, aoti, onnxruntime, tensorrt, openvino, executorch.
std::vector<std::string> compiled_backends();
// Every backend name the program knows, compiled or not.
std::vector<std::string> known_backends();
// Backend for a file suffix: .pt/.ts torchscript, .pt2 aoti, .onnx onnxruntime,
// .engine/.plan tensorrt, .xml openvino, .pte executorch. Throws dmphn::Error for any other suffix.
std::string backend_for_path(const std::string& path);
// A fresh backend; throws dmphn::Error naming why when it is unknown or not compiled in.
std::unique_ptr<Backend> make_backend(const std::string& name);

}  // namespace dmphn
