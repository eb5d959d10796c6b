#include "dmphn/backend.h"

#include <algorithm>
#include <filesystem>

#include "backends/backends.h"
#include "dmphn/errors.h"

namespace dmphn {

std::vector<std::string> known_backends() { return {"torchscript", "aoti", "onnxruntime", "tensorrt", "openvino", "executorch"}; }

std::vector<std::string> compiled_backends() {
  std::vector<std::string> names;
#ifdef DMPHN_WITH_TORCHSCRIPT
  names.emplace_back("torchscript");
#endif
#ifdef DMPHN_WITH_AOTI
  names.emplace_back("aoti");
#endif
#ifdef DMPHN_WITH_ONNXRUNTIME
  names.emplace_back("onnxruntime");
#endif
#ifdef DMPHN_WITH_TENSORRT
  names.emplace_back("tensorrt");
#endif
#ifdef DMPHN_WITH_OPENVINO
  names.emplace_back("openvino");
#endif
#ifdef DMPHN_WITH_EXECUTORCH
  names.emplace_back("executorch");
#endif
  return names;
}

std::string backend_for_path(const std::string& path) {
  std::string suffix = std::filesystem::path(path).extension().string();
  std::transform(suffix.begin(), suffix.end(), suffix.begin(), [](unsigned char c) { return std::tolower(c); });
  if (suffix == ".pt" || suffix == ".ts") return "torchscript";
  if (suffix == ".pt2") return "aoti";
  if (suffix == ".onnx") return "onnxruntime";
  if (suffix == ".engine" || suffix == ".plan") return "tensorrt";
  if (suffix == ".xml") return "openvino";
  if (suffix == ".pte") return "executorch";
  throw Error("cannot tell the backend from the suffix of " + path +
              " (.pt/.ts torchscript, .pt2 aoti, .onnx onnxruntime, .engine/.plan tensorrt, .xml openvino, "
              ".pte executorch); pass --backend");
}

std::unique_ptr<Backend> make_backend(const std::string& name) {
#ifdef DMPHN_WITH_TORCHSCRIPT
  if (name == "torchscript") return make_torchscript_backend();
#endif
#ifdef DMPHN_WITH_AOTI
  if (name == "aoti") return make_aoti_backend();
#endif
#ifdef DMPHN_WITH_ONNXRUNTIME
  if (name == "onnxruntime") return make_onnxruntime_backend();
#endif
#ifdef DMPHN_WITH_TENSORRT
  if (name == "tensorrt") return make_tensorrt_backend();
#endif
#ifdef DMPHN_WITH_OPENVINO
  if (name == "openvino") return make_openvino_backend();
#endif
#ifdef DMPHN_WITH_EXECUTORCH
  if (name == "executorch") return make_executorch_backend();
#endif
  std::string compiled;
  for (const auto& backend : compiled_backends()) compiled += (compiled.empty() ? "" : ", ") + backend;
  if (compiled.empty()) compiled = "none";
  const auto known = known_backends();
  if (std::find(known.begin(), known.end(), name) != known.end()) {
    throw Error("backend " + name + " was not compiled into this build (its SDK was not found at configure time; "
                "see the cmake output); compiled backends: " + compiled);
  }
  throw Error("unknown backend " + name + "; use one of torchscript, aoti, onnxruntime, tensorrt, openvino, executorch (compiled: " +
              compiled + ")");
}

}  // namespace dmphn
