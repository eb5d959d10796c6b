// AOTInductor packages (.pt2 from export/to_aoti.py): compiled code for one device, run by
// torch::inductor::AOTIModelPackageLoader; metadata under dmphn.json in get_metadata().
#include <torch/csrc/inductor/aoti_package/model_package_loader.h>

#include <c10/core/InferenceMode.h>

#include <filesystem>
#include <memory>

#include "backends.h"
#include "dmphn/errors.h"
#include "torch_common.h"

namespace dmphn {
namespace {

class AotiBackend final : public Backend {
 public:
  std::string name() const override { return "aoti"; }

  void load(const std::string& path, const std::string& device) override {
    std::error_code ec;
    if (!std::filesystem::is_regular_file(path, ec)) throw Error("model not found: " + path);
    device_ = torch_common::parse_device(device, name());
    if (device_.is_cuda()) torch_common::disable_tf32();
    std::unordered_map<std::string, std::string> package_metadata;
    try {
      loader_ = std::make_unique<torch::inductor::AOTIModelPackageLoader>(path);
      package_metadata = loader_->get_metadata();
    } catch (const c10::Error& exc) {
      throw Error("cannot load AOTInductor package " + path + ": " +
                  torch_common::first_line(exc.what_without_backtrace()));
    } catch (const std::exception& exc) {
      throw Error("cannot load AOTInductor package " + path + ": " + torch_common::first_line(exc.what()));
    }
    // Inductor records the device it compiled for; the package runs there and nowhere else.
    const auto built_for = package_metadata.find("AOTI_DEVICE_KEY");
    if (built_for != package_metadata.end() && built_for->second != device) {
      throw Error(path + " was compiled for " + built_for->second + ", not " + device + "; pass --device " +
                  built_for->second + " or export a package for " + device);
    }
    const auto json = package_metadata.find(kMetadataKey);
    if (json == package_metadata.end() || json->second.empty()) {
      throw Error(path + " has no " + std::string(kMetadataKey) +
                  " package metadata: not a DMPHN export (use dmphn-export aoti)");
    }
    metadata_ = ArtifactMetadata::parse(json->second, path);
  }

  Tensor infer(const Tensor& input) override {
    c10::InferenceMode guard;
    std::vector<at::Tensor> outputs;
    try {
      outputs = loader_->run({torch_common::to_torch(input, device_)});
    } catch (const c10::Error& exc) {
      throw Error("aoti inference failed: " + torch_common::first_line(exc.what_without_backtrace()));
    }
    if (outputs.size() != 1) throw Error("aoti package returned " + std::to_string(outputs.size()) + " outputs, expected 1");
    return torch_common::from_torch(outputs[0]);
  }

 private:
  std::unique_ptr<torch::inductor::AOTIModelPackageLoader> loader_;
  c10::Device device_{c10::kCPU};
};

}  // namespace

std::unique_ptr<Backend> make_aoti_backend() { return std::make_unique<AotiBackend>(); }

}  // namespace dmphn
