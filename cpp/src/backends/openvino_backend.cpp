// OpenVINO IR (.xml + .bin from export/to_openvino.py) with the OpenVINO C++ API, on the CPU;
// metadata in the IR's rt_info under <dmphn><json value=...>.
//
// Compiled with the f32 inference-precision hint: a float IR then runs in fp32 on every CPU
// (OpenVINO's default is bf16 on CPUs that have it), and an int8 IR runs its quantized
// (FakeQuantize) layers in int8 and the rest in fp32, as the Python runner does.
#include <openvino/openvino.hpp>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <memory>

#include "backends.h"
#include "dmphn/errors.h"

namespace dmphn {
namespace {

class OpenVINOBackend final : public Backend {
 public:
  std::string name() const override { return "openvino"; }

  void load(const std::string& path, const std::string& device) override {
    std::error_code ec;
    if (!std::filesystem::is_regular_file(path, ec)) throw Error("model not found: " + path);
    const std::filesystem::path weights = std::filesystem::path(path).replace_extension(".bin");
    if (!std::filesystem::is_regular_file(weights, ec)) {
      throw Error("OpenVINO weights not found: " + weights.string() + " (an IR is a .xml and its .bin)");
    }
    if (device != "cpu") throw Error("the openvino backend runs on the CPU only (got device " + device + ")");
    try {
      std::shared_ptr<ov::Model> model = core_.read_model(path, weights.string());
      if (!model->has_rt_info("dmphn", "json")) {
        throw Error(path + " has no dmphn/json rt_info: not a DMPHN export (use dmphn-export openvino)");
      }
      metadata_ = ArtifactMetadata::parse(model->get_rt_info<std::string>("dmphn", "json"), path);
      if (model->inputs().size() != 1 || model->outputs().size() != 1) {
        throw Error(path + ": expected one input and one output");
      }
      compiled_ = core_.compile_model(model, "CPU", ov::hint::inference_precision(ov::element::f32),
                                      ov::hint::performance_mode(ov::hint::PerformanceMode::LATENCY));
      request_ = compiled_.create_infer_request();
    } catch (const Error&) {
      throw;
    } catch (const std::exception& exc) {
      throw Error("cannot load OpenVINO IR " + path + ": " + first_line(exc.what()));
    }
  }

  Tensor infer(const Tensor& input) override {
    try {
      ov::Shape shape(input.shape.begin(), input.shape.end());
      // Wraps the caller's buffer without a copy; OpenVINO only reads inputs.
      ov::Tensor x(ov::element::f32, shape, const_cast<float*>(input.data.data()));
      request_.set_input_tensor(x);
      request_.infer();
      const ov::Tensor y = request_.get_output_tensor();
      if (y.get_element_type() != ov::element::f32) throw Error("OpenVINO output is not float32");
      const ov::Shape out_shape = y.get_shape();
      Tensor out(std::vector<int64_t>(out_shape.begin(), out_shape.end()));
      std::memcpy(out.data.data(), y.data<const float>(), out.data.size() * sizeof(float));
      return out;
    } catch (const Error&) {
      throw;
    } catch (const std::exception& exc) {
      throw Error(std::string("openvino inference failed: ") + first_line(exc.what()));
    }
  }

 private:
  // OpenVINO's messages carry a file:line trace after the first line; the user gets one line.
  static std::string first_line(const std::string& text) {
    std::string line = text.substr(0, text.find('\n'));
    return line.empty() ? text : line;
  }

  ov::Core core_;  // declared first: outlives the compiled model and its request
  ov::CompiledModel compiled_;
  ov::InferRequest request_;
};

}  // namespace

std::unique_ptr<Backend> make_openvino_backend() { return std::make_unique<OpenVINOBackend>(); }

}  // namespace dmphn
