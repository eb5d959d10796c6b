// TensorRT 10 engines (.engine/.plan from export/to_tensorrt.py) on CUDA; metadata in the
// JSON sidecar "<engine>.json". Written against the TensorRT 10 C++ API (name-based I/O:
// setInputShape / setTensorAddress / enqueueV3); objects are released with delete.
// The sidecar's TensorRT release and compute capability are checked against the running
// library and GPU before deserialising: TensorRT's own message for either is vague.
#include <NvInferRuntime.h>
#include <cuda_runtime_api.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "backends.h"
#include "dmphn/errors.h"

namespace dmphn {
namespace {

// Keeps the last error instead of printing: the program reports one line on failure.
// Cleared before each TensorRT call, so a message always belongs to the call that failed.
class TrtLogger final : public nvinfer1::ILogger {
 public:
  void log(Severity severity, const char* message) noexcept override {
    if (severity <= Severity::kERROR) last_error = message;
  }
  // Before a call: forget what an earlier (recovered-from) call logged.
  TrtLogger& fresh() {
    last_error.clear();
    return *this;
  }
  // For an error message: the logged reason, or that TensorRT logged none.
  std::string reason() const { return last_error.empty() ? "TensorRT logged no error" : last_error; }
  std::string last_error;
};

void check_cuda(cudaError_t status, const std::string& what) {
  if (status != cudaSuccess) throw Error("CUDA " + what + " failed: " + cudaGetErrorString(status));
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error("cannot read " + path);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

// The first three parts of "10.3.0.26": what getInferLibVersion() can be compared with.
std::string release_of(const std::string& version) {
  std::vector<std::string> parts;
  std::stringstream in(version);
  for (std::string part; parts.size() < 3 && std::getline(in, part, '.');) parts.push_back(part);
  std::string out;
  for (const auto& part : parts) out += (out.empty() ? "" : ".") + part;
  return out;
}

// getInferLibVersion() is (MAJOR * 100 + MINOR) * 100 + PATCH since TensorRT 10.
std::string running_tensorrt_release() {
  const int32_t v = getInferLibVersion();
  return std::to_string(v / 10000) + "." + std::to_string(v / 100 % 100) + "." + std::to_string(v % 100);
}

std::string running_compute_capability() {
  int device = 0, major = 0, minor = 0;
  check_cuda(cudaGetDevice(&device), "cudaGetDevice");
  check_cuda(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device), "cudaDeviceGetAttribute");
  check_cuda(cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, device), "cudaDeviceGetAttribute");
  return std::to_string(major) + "." + std::to_string(minor);
}

// Throws when the sidecar says the engine was built by another TensorRT release or for
// another GPU architecture; says nothing where the sidecar does not record them.
void check_engine_fits_here(const std::string& sidecar_json, const std::string& path) {
  const auto doc = nlohmann::json::parse(sidecar_json, nullptr, /*allow_exceptions=*/false);
  if (!doc.is_object()) return;  // ArtifactMetadata::parse already reported malformed JSON
  const auto text_at = [&](const char* pointer) {
    const nlohmann::json::json_pointer where(pointer);
    return doc.contains(where) && doc.at(where).is_string() ? doc.at(where).get<std::string>() : std::string();
  };
  const std::string built_with = text_at("/tensorrt/version");
  if (!built_with.empty() && release_of(built_with) != running_tensorrt_release()) {
    throw Error("cannot load TensorRT engine " + path + ": it was built with TensorRT " + built_with +
                ", but this is TensorRT " + running_tensorrt_release() + "; rebuild it here with dmphn-export trt");
  }
  const std::string built_for = text_at("/gpu/compute_capability");
  if (!built_for.empty() && built_for != running_compute_capability()) {
    throw Error("cannot load TensorRT engine " + path + ": it was built for compute capability " + built_for +
                ", but this GPU has compute capability " + running_compute_capability() +
                "; rebuild it here with dmphn-export trt");
  }
}

// One cudaMalloc'd buffer, grown on demand (cudaMalloc returns 256-byte aligned memory, as
// setTensorAddress requires). Not copyable: two owners would free the memory twice.
class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  ~DeviceBuffer() { cudaFree(data_); }
  void* reserve(size_t bytes) {
    if (bytes > capacity_) {
      cudaFree(data_);
      data_ = nullptr;
      capacity_ = 0;
      check_cuda(cudaMalloc(&data_, bytes), "cudaMalloc");
      capacity_ = bytes;
    }
    return data_;
  }

 private:
  void* data_ = nullptr;
  size_t capacity_ = 0;
};

class TensorRTBackend final : public Backend {
 public:
  ~TensorRTBackend() override {
    context_.reset();  // before the stream and the engine it came from
    if (stream_ != nullptr) cudaStreamDestroy(stream_);
  }

  std::string name() const override { return "tensorrt"; }

  void load(const std::string& path, const std::string& device) override {
    if (device != "cuda") throw Error("TensorRT engines run on CUDA only; pass --device cuda");
    std::error_code ec;
    if (!std::filesystem::is_regular_file(path, ec)) throw Error("model not found: " + path);
    const std::string sidecar = path + ".json";  // export/to_tensorrt.py::sidecar_path
    if (!std::filesystem::is_regular_file(sidecar, ec)) {
      throw Error("TensorRT engine " + path + " has no JSON sidecar " + sidecar + " (written by dmphn-export trt)");
    }
    metadata_ = ArtifactMetadata::parse(read_file(sidecar), sidecar);
    check_engine_fits_here(metadata_.json, path);

    const std::string blob = read_file(path);
    runtime_.reset(nvinfer1::createInferRuntime(logger_.fresh()));
    if (!runtime_) throw Error("cannot create the TensorRT runtime: " + logger_.reason());
    logger_.fresh();
    engine_.reset(runtime_->deserializeCudaEngine(blob.data(), blob.size()));
    if (!engine_) {
      throw Error("cannot deserialize TensorRT engine " + path + ": " + logger_.reason() +
                  " (engines only load with the TensorRT version and GPU they were built with)");
    }
    for (const char* tensor : {kInputName, kOutputName}) {
      if (engine_->getTensorIOMode(tensor) == nvinfer1::TensorIOMode::kNONE) {
        throw Error(path + " has no tensor named " + std::string(tensor));
      }
      if (engine_->getTensorDataType(tensor) != nvinfer1::DataType::kFLOAT) {
        throw Error(path + ": tensor " + std::string(tensor) + " is not float32");
      }
    }
    logger_.fresh();
    context_.reset(engine_->createExecutionContext());
    if (!context_) throw Error("cannot create a TensorRT execution context: " + logger_.reason());
    check_cuda(cudaStreamCreate(&stream_), "cudaStreamCreate");
  }

  Tensor infer(const Tensor& input) override {
    nvinfer1::Dims dims{};
    dims.nbDims = static_cast<int32_t>(input.shape.size());
    for (size_t i = 0; i < input.shape.size(); ++i) dims.d[i] = input.shape[i];
    logger_.fresh();
    if (!context_->setInputShape(kInputName, dims)) {
      throw Error("TensorRT engine does not accept input " + shape_string(input.shape) + ": " + logger_.reason());
    }
    const nvinfer1::Dims out_dims = context_->getTensorShape(kOutputName);
    std::vector<int64_t> out_shape;
    for (int32_t i = 0; i < out_dims.nbDims; ++i) out_shape.push_back(out_dims.d[i]);
    Tensor output(out_shape);

    const size_t in_bytes = input.data.size() * sizeof(float);
    const size_t out_bytes = output.data.size() * sizeof(float);
    void* device_in = input_buffer_.reserve(in_bytes);
    void* device_out = output_buffer_.reserve(out_bytes);
    check_cuda(cudaMemcpyAsync(device_in, input.data.data(), in_bytes, cudaMemcpyHostToDevice, stream_), "copy to GPU");
    logger_.fresh();
    if (!context_->setTensorAddress(kInputName, device_in) || !context_->setTensorAddress(kOutputName, device_out)) {
      throw Error("TensorRT setTensorAddress failed: " + logger_.reason());
    }
    logger_.fresh();
    if (!context_->enqueueV3(stream_)) throw Error("TensorRT enqueueV3 failed: " + logger_.reason());
    check_cuda(cudaMemcpyAsync(output.data.data(), device_out, out_bytes, cudaMemcpyDeviceToHost, stream_), "copy to host");
    check_cuda(cudaStreamSynchronize(stream_), "cudaStreamSynchronize");
    return output;
  }

 private:
  TrtLogger logger_;  // outlives the runtime
  std::unique_ptr<nvinfer1::IRuntime> runtime_;
  std::unique_ptr<nvinfer1::ICudaEngine> engine_;
  std::unique_ptr<nvinfer1::IExecutionContext> context_;
  cudaStream_t stream_ = nullptr;
  DeviceBuffer input_buffer_;
  DeviceBuffer output_buffer_;
};

}  // namespace

std::unique_ptr<Backend> make_tensorrt_backend() { return std::make_unique<TensorRTBackend>(); }

}  // namespace dmphn
