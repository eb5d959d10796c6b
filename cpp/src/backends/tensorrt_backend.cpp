// TensorRT 10 engines (.engine/.plan from export/to_tensorrt.py) on CUDA; metadata in the
// JSON sidecar "<engine>.json". Written against the TensorRT 10 C++ API (name-based I/O:
// setInputShape / setTensorAddress / enqueueV3); objects are released with delete.
// The sidecar's TensorRT release, compute capability and GPU name are checked against the
// running library and GPU before deserialising: TensorRT's own message for either is vague.
// An engine without a sidecar (trtexec's) still runs, as in Python (runtimes/tensorrt.py):
// its input shape comes from the engine, its size block is one every DMPHN accepts, and a
// warning on stderr says so.
#include <NvInferRuntime.h>
#include <cuda_runtime_api.h>

#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
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

// The GPU's model name, as torch.cuda.get_device_name() gives it (the sidecar's /gpu/name).
std::string running_device_name() {
  int device = 0;
  cudaDeviceProp properties{};
  check_cuda(cudaGetDevice(&device), "cudaGetDevice");
  check_cuda(cudaGetDeviceProperties(&properties, device), "cudaGetDeviceProperties");
  return properties.name;
}

// A size block every DMPHN hierarchy and layout accepts: dmphn_core.tiling.universal_size_block()
// (tests/runtimes/test_tensorrt_compat.py checks the two agree), for engines that do not name their model.
constexpr std::array<int64_t, 2> kUniversalSizeBlock{16, 16};

// Metadata for an engine without a sidecar: its input shape from the engine (-1: dynamic axis).
ArtifactMetadata metadata_from_engine(const nvinfer1::ICudaEngine& engine) {
  ArtifactMetadata meta;
  meta.model = "unknown (engine without sidecar)";
  meta.precision = "unknown";
  meta.size_block_hw = kUniversalSizeBlock;
  const nvinfer1::Dims dims = engine.getTensorShape(kInputName);
  for (int32_t i = 0; i < dims.nbDims; ++i) {
    if (dims.d[i] < 0) {
      meta.input_shape.emplace_back(std::nullopt);
      meta.input_shape_names.emplace_back("dynamic");
    } else {
      meta.input_shape.emplace_back(dims.d[i]);
      meta.input_shape_names.emplace_back();
    }
  }
  return meta;
}

// Throws when the sidecar says the engine was built by another TensorRT release, for another
// GPU architecture or on another GPU model (TensorRT engines are specific to the model they
// were built on: an H100 engine is not one for an H200, though both are compute capability
// 9.0); says nothing where the sidecar does not record them.
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
  const std::string built_on = text_at("/gpu/name");
  if (!built_on.empty() && built_on != running_device_name()) {
    throw Error("cannot load TensorRT engine " + path + ": it was built on a " + built_on + ", but this GPU is a " +
                running_device_name() + " (TensorRT engines are specific to the GPU model they were built on); "
                "rebuild it here with dmphn-export trt");
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
    const std::string sidecar = path + ".json";  // dmphn_core/artifact.py::sidecar_path
    const bool has_sidecar = std::filesystem::is_regular_file(sidecar, ec);
    if (has_sidecar) {
      metadata_ = ArtifactMetadata::parse(read_file(sidecar), sidecar);
      check_engine_fits_here(metadata_.json, path);
    }

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
    if (!has_sidecar) {
      metadata_ = metadata_from_engine(*engine_);
      std::fprintf(stderr,
                   "warning: TensorRT engine %s has no sidecar %s (dmphn-export trt writes one): model unknown, "
                   "input %s from the engine, images padded to multiples of %lldx%lld; the TensorRT release and GPU "
                   "it was built for are not checked before loading\n",
                   path.c_str(), sidecar.c_str(), metadata_.input_shape_string().c_str(),
                   static_cast<long long>(kUniversalSizeBlock[0]), static_cast<long long>(kUniversalSizeBlock[1]));
    }
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
