// ExecuTorch program (.pte from export/to_executorch.py), fully delegated to XNNPACK, on the CPU;
// metadata from the program's constant method "dmphn_json" (a string; dmphn_core/artifact.py).
//
// Built against the executorch wheel's headers and shared libraries (libexecutorch,
// libexecutorch_backend_xnnpack and libexecutorch_kernels_optimized register themselves when
// they load; the kernels run an fp16 program's float32 <-> float16 casts at input and output).
// Threads: XNNPACK uses ExecuTorch's process-wide pool, one thread per core; the wheel ships
// no header to resize it from C++ (threadpool.h is not installed), so the program uses the default.
#include <executorch/extension/module/module.h>
#include <executorch/extension/tensor/tensor.h>

#include <cstring>
#include <filesystem>
#include <memory>

#include "backends.h"
#include "dmphn/errors.h"

namespace dmphn {
namespace {

using executorch::extension::Module;
using ErrorCode = executorch::runtime::Error;

constexpr const char* kMetadataMethod = "dmphn_json";

std::string status(ErrorCode code) { return "ExecuTorch error " + std::to_string(static_cast<int>(code)); }

class ExecuTorchBackend final : public Backend {
 public:
  std::string name() const override { return "executorch"; }

  void load(const std::string& path, const std::string& device) override {
    std::error_code ec;
    if (!std::filesystem::is_regular_file(path, ec)) throw dmphn::Error("model not found: " + path);
    if (device != "cpu") throw dmphn::Error("the executorch backend runs on the CPU only (got device " + device + ")");
    module_ = std::make_unique<Module>(path, Module::LoadMode::Mmap);
    if (const ErrorCode code = module_->load(); code != ErrorCode::Ok) {
      throw dmphn::Error("cannot load ExecuTorch program " + path + ": " + status(code));
    }
    const auto names = module_->method_names();
    if (!names.ok() || names->count(kMetadataMethod) == 0) {
      throw dmphn::Error(path + " has no dmphn_json method: not a DMPHN export (use dmphn-export executorch)");
    }
    const auto blob = module_->execute(kMetadataMethod);
    if (!blob.ok() || blob->empty() || !blob->at(0).isString()) {
      throw dmphn::Error(path + ": its dmphn_json method did not return the metadata string");
    }
    metadata_ = ArtifactMetadata::parse(std::string(blob->at(0).toString()), path);
    if (const ErrorCode code = module_->load_forward(); code != ErrorCode::Ok) {
      throw dmphn::Error("cannot load the forward method of " + path + ": " + status(code));
    }
  }

  Tensor infer(const Tensor& input) override {
    std::vector<executorch::aten::SizesType> sizes(input.shape.begin(), input.shape.end());
    // Wraps the caller's buffer without a copy; the program only reads its input.
    auto x = executorch::extension::from_blob(const_cast<float*>(input.data.data()), sizes);
    const auto result = module_->forward(x);
    if (!result.ok()) throw dmphn::Error("executorch inference failed: " + status(result.error()));
    if (result->empty() || !result->at(0).isTensor()) throw dmphn::Error("executorch: the program returned no tensor");
    const auto& y = result->at(0).toTensor();
    if (y.scalar_type() != executorch::aten::ScalarType::Float) throw dmphn::Error("executorch output is not float32");
    Tensor out(std::vector<int64_t>(y.sizes().begin(), y.sizes().end()));
    std::memcpy(out.data.data(), y.const_data_ptr<float>(), out.data.size() * sizeof(float));
    return out;
  }

 private:
  std::unique_ptr<Module> module_;
};

}  // namespace

std::unique_ptr<Backend> make_executorch_backend() { return std::make_unique<ExecuTorchBackend>(); }

}  // namespace dmphn
