// TorchScript (.pt/.ts from export/to_torchscript.py): torch::jit::load with the metadata
// in the extra file dmphn.json.
#include <torch/script.h>

#include <filesystem>

#include "backends.h"
#include "dmphn/errors.h"
#include "torch_common.h"

namespace dmphn {
namespace {

class TorchScriptBackend final : public Backend {
 public:
  std::string name() const override { return "torchscript"; }

  void load(const std::string& path, const std::string& device) override {
    std::error_code ec;
    if (!std::filesystem::is_regular_file(path, ec)) throw Error("model not found: " + path);
    device_ = torch_common::parse_device(device, name());
    torch::jit::ExtraFilesMap extra_files{{kMetadataKey, ""}};
    try {
      module_ = torch::jit::load(path, device_, extra_files);
    } catch (const c10::Error& exc) {
      throw Error("cannot load TorchScript " + path + ": " + torch_common::first_line(exc.what_without_backtrace()));
    } catch (const std::exception& exc) {
      throw Error("cannot load TorchScript " + path + ": " + torch_common::first_line(exc.what()));
    }
    module_.eval();
    const std::string& json = extra_files[kMetadataKey];
    if (json.empty()) {
      throw Error(path + " has no " + std::string(kMetadataKey) +
                  " extra file: not a DMPHN export (use dmphn-export torchscript)");
    }
    metadata_ = ArtifactMetadata::parse(json, path);
  }

  Tensor infer(const Tensor& input) override {
    c10::InferenceMode guard;
    at::Tensor output;
    try {
      output = module_.forward({torch_common::to_torch(input, device_)}).toTensor();
    } catch (const c10::Error& exc) {
      throw Error("torchscript inference failed: " + torch_common::first_line(exc.what_without_backtrace()));
    }
    return torch_common::from_torch(output);
  }

 private:
  torch::jit::Module module_;
  c10::Device device_{c10::kCPU};
};

}  // namespace

std::unique_ptr<Backend> make_torchscript_backend() { return std::make_unique<TorchScriptBackend>(); }

}  // namespace dmphn
