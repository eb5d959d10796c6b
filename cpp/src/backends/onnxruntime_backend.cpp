// ONNX (.onnx from export/to_onnx.py) with the ONNX Runtime C++ API; metadata in the
// model's custom metadata map under dmphn.json.
//
// The library is dlopen()ed on first use (path fixed at configure time, overridable with
// the environment variable DMPHN_ONNXRUNTIME_LIBRARY) rather than linked: the program then
// starts without it, and the library finds its provider plugins beside its real file. The
// C++ API reaches the library only through the OrtApi table, installed by hand
// (ORT_API_MANUAL_INIT); a library older than the headers is a clear error, not a crash.
#define ORT_API_MANUAL_INIT
#include <onnxruntime_cxx_api.h>
#undef ORT_API_MANUAL_INIT

#include <dlfcn.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <memory>

#include "backends.h"
#include "dmphn/errors.h"

namespace dmphn {
namespace {

void init_ort_api() {
  static const OrtApi* installed = nullptr;
  if (installed != nullptr) return;
  const char* from_env = std::getenv("DMPHN_ONNXRUNTIME_LIBRARY");
  const std::string library = from_env != nullptr && *from_env != '\0' ? from_env : DMPHN_ONNXRUNTIME_LIBRARY;
  void* handle = dlopen(library.c_str(), RTLD_NOW | RTLD_LOCAL);  // kept open for the process
  if (handle == nullptr) {
    throw Error("cannot load the ONNX Runtime library: " + std::string(dlerror()) +
                " (set DMPHN_ONNXRUNTIME_LIBRARY to libonnxruntime.so)");
  }
  using GetApiBase = const OrtApiBase* (*)();
  const auto get_api_base = reinterpret_cast<GetApiBase>(dlsym(handle, "OrtGetApiBase"));
  if (get_api_base == nullptr) throw Error(library + " has no OrtGetApiBase: not an ONNX Runtime library");
  const OrtApiBase* base = get_api_base();
  const OrtApi* api = base->GetApi(ORT_API_VERSION);
  if (api == nullptr) {
    throw Error("the ONNX Runtime library (" + std::string(base->GetVersionString()) +
                ") is older than the headers this program was built with (API " + std::to_string(ORT_API_VERSION) + ")");
  }
  Ort::InitApi(api);
  installed = api;
}

class OnnxRuntimeBackend final : public Backend {
 public:
  std::string name() const override { return "onnxruntime"; }

  void load(const std::string& path, const std::string& device) override {
    std::error_code ec;
    if (!std::filesystem::is_regular_file(path, ec)) throw Error("model not found: " + path);
    if (device != "cpu" && device != "cuda") throw Error("unknown device " + device + "; use cpu or cuda");
    init_ort_api();
    try {
      env_ = std::make_unique<Ort::Env>(ORT_LOGGING_LEVEL_FATAL, "dmphn");
      Ort::SessionOptions options;
      options.SetGraphOptimizationLevel(GraphOptimizationLevel::ORT_ENABLE_ALL);
      if (device == "cuda") {
        try {
          OrtCUDAProviderOptions cuda_options{};
          options.AppendExecutionProvider_CUDA(cuda_options);
        } catch (const Ort::Exception& exc) {
          throw Error(std::string("this ONNX Runtime library has no usable CUDA execution provider (the CPU "
                                  "`onnxruntime` wheel has none; onnxruntime-gpu has): ") + exc.what());
        }
      }
      session_ = std::make_unique<Ort::Session>(*env_, path.c_str(), options);
      Ort::AllocatorWithDefaultOptions allocator;
      const Ort::ModelMetadata model_metadata = session_->GetModelMetadata();
      const Ort::AllocatedStringPtr json = model_metadata.LookupCustomMetadataMapAllocated(kMetadataKey, allocator);
      if (!json) {
        throw Error(path + " has no " + std::string(kMetadataKey) +
                    " metadata entry: not a DMPHN export (use dmphn-export onnx)");
      }
      metadata_ = ArtifactMetadata::parse(json.get(), path);
      if (session_->GetInputCount() != 1 || session_->GetOutputCount() != 1) {
        throw Error(path + ": expected one input and one output");
      }
      input_name_ = session_->GetInputNameAllocated(0, allocator).get();
      output_name_ = session_->GetOutputNameAllocated(0, allocator).get();
    } catch (const Ort::Exception& exc) {
      throw Error("cannot load ONNX model " + path + ": " + exc.what());
    }
  }

  Tensor infer(const Tensor& input) override {
    try {
      const Ort::MemoryInfo memory = Ort::MemoryInfo::CreateCpu(OrtArenaAllocator, OrtMemTypeDefault);
      // CreateTensor wraps the buffer without copying and wants a mutable pointer; ONNX
      // Runtime only reads inputs.
      Ort::Value x = Ort::Value::CreateTensor<float>(memory, const_cast<float*>(input.data.data()), input.data.size(),
                                                     input.shape.data(), input.shape.size());
      const char* input_names[] = {input_name_.c_str()};
      const char* output_names[] = {output_name_.c_str()};
      std::vector<Ort::Value> outputs = session_->Run(Ort::RunOptions{nullptr}, input_names, &x, 1, output_names, 1);
      const Ort::TensorTypeAndShapeInfo info = outputs.at(0).GetTensorTypeAndShapeInfo();
      if (info.GetElementType() != ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT) throw Error("ONNX output is not float32");
      Tensor out(info.GetShape());
      std::memcpy(out.data.data(), outputs[0].GetTensorData<float>(), out.data.size() * sizeof(float));
      return out;
    } catch (const Ort::Exception& exc) {
      throw Error(std::string("onnxruntime inference failed: ") + exc.what());
    }
  }

 private:
  // Its own log goes to stderr; errors reach the user as exceptions instead (one line).
  std::unique_ptr<Ort::Env> env_;  // must outlive the session: declared first, destroyed last
  std::unique_ptr<Ort::Session> session_;
  std::string input_name_;
  std::string output_name_;
};

}  // namespace

std::unique_ptr<Backend> make_onnxruntime_backend() { return std::make_unique<OnnxRuntimeBackend>(); }

}  // namespace dmphn
