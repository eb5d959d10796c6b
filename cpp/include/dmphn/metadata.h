// The artifact metadata (dmphn_core/artifact.py) that every exported DMPHN model carries:
// read from the TorchScript extra file, the AOTI package metadata, the ONNX custom
// metadata map or the TensorRT engine's JSON sidecar, always under the key "dmphn.json".
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace dmphn {

inline constexpr const char* kMetadataKey = "dmphn.json";
inline constexpr const char* kInputName = "blurred";
inline constexpr const char* kOutputName = "deblurred";

struct ArtifactMetadata {
  std::string model;                       // e.g. "DMPHN-1-2-4-8"
  std::array<int64_t, 2> size_block_hw{};  // H must be a multiple of [0], W of [1]
  // input.shape: a number per static axis, nullopt for a dynamic one ("batch", "height", ...)
  std::vector<std::optional<int64_t>> input_shape;
  std::vector<std::string> input_shape_names;  // the symbol of each dynamic axis, "" if static
  std::string precision;                       // fp32, tf32, fp16, bf16
  std::string json;                            // the raw JSON, for anything else

  // Parse the JSON text; ``source`` names the file in error messages.
  static ArtifactMetadata parse(const std::string& json_text, const std::string& source);

  // "1x3x104x160", dynamic axes by name: "batchx3x32x64"
  std::string input_shape_string() const;
  // Whether an input of ``shape`` fits input.shape (dynamic axes accept any size).
  bool accepts(const std::vector<int64_t>& shape) const;
};

}  // namespace dmphn
