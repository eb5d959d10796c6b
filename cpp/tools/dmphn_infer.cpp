// dmphn_infer: deblur one image with an exported DMPHN model (TorchScript, AOTInductor,
// ONNX Runtime or TensorRT), print the timing, write the PNG and optionally the raw output.
//
// Exit codes as the Python CLIs: 0 success, 2 user error (one "error: ..." line on stderr),
// 3 unexpected failure. Outputs are written to a temporary file and renamed.
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <string>
#include <vector>

#include "dmphn/backend.h"
#include "dmphn/errors.h"
#include "dmphn/fileio.h"
#include "dmphn/image.h"
#include "dmphn/pipeline.h"

namespace {

const char* kUsage =
    "usage: dmphn_infer --model PATH [--backend B] [--device cpu|cuda] -i IN.png -o OUT.png\n"
    "                   [--npy OUT.npy] [--repeat N] [--warmup N]\n"
    "       dmphn_infer --list-backends\n"
    "\n"
    "  --model PATH     exported model: .pt/.ts torchscript, .pt2 aoti, .onnx onnxruntime,\n"
    "                   .engine/.plan tensorrt (sidecar PATH.json), .xml openvino (+ PATH.bin), .pte executorch\n"
    "  --backend B      torchscript | aoti | onnxruntime | tensorrt | openvino | executorch (default: from the suffix)\n"
    "  --device D       cpu (default) or cuda\n"
    "  -i, --input      PNG (8/16-bit grey, RGB, RGBA) or JPEG image\n"
    "  -o, --output     deblurred 8-bit RGB PNG (clamped to [0, 1])\n"
    "  --npy PATH       also write the raw float32 output, shape (1, 3, H, W) (NCHW), not clamped\n"
    "  --repeat N       timed runs (default 1); --warmup N untimed runs first (default 0)\n"
    "  --list-backends  print the backends compiled into this build\n";

struct Options {
  std::string model, backend, device = "cpu", input, output, npy;
  int repeat = 1;
  int warmup = 0;
  bool list_backends = false;
};

int parse_count(const std::string& flag, const std::string& text) {
  try {
    size_t used = 0;
    const int value = std::stoi(text, &used);
    if (used == text.size()) return value;
  } catch (const std::exception&) {
  }
  throw dmphn::Error(flag + " expects an integer, got '" + text + "'");
}

Options parse_args(int argc, char** argv) {
  Options options;
  std::vector<std::string> args(argv + 1, argv + argc);
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& flag = args[i];
    if (flag == "-h" || flag == "--help") {
      std::cout << kUsage;
      std::exit(0);
    }
    if (flag == "--list-backends") {
      options.list_backends = true;
      continue;
    }
    if (i + 1 >= args.size()) throw dmphn::Error("missing value after " + flag + " (see --help)");
    const std::string& value = args[++i];
    if (flag == "--model" || flag == "-m") options.model = value;
    else if (flag == "--backend") options.backend = value;
    else if (flag == "--device") options.device = value;
    else if (flag == "-i" || flag == "--input") options.input = value;
    else if (flag == "-o" || flag == "--output") options.output = value;
    else if (flag == "--npy") options.npy = value;
    else if (flag == "--repeat") options.repeat = parse_count(flag, value);
    else if (flag == "--warmup") options.warmup = parse_count(flag, value);
    else throw dmphn::Error("unknown option " + flag + " (see --help)");
  }
  if (options.list_backends) return options;
  if (options.model.empty()) throw dmphn::Error("--model is required (see --help)");
  if (options.input.empty()) throw dmphn::Error("-i/--input is required (see --help)");
  if (options.output.empty()) throw dmphn::Error("-o/--output is required (see --help)");
  if (options.device != "cpu" && options.device != "cuda") {
    throw dmphn::Error("unknown device " + options.device + "; use cpu or cuda");
  }
  if (options.repeat < 1) throw dmphn::Error("--repeat must be at least 1, got " + std::to_string(options.repeat));
  if (options.warmup < 0) throw dmphn::Error("--warmup must be at least 0, got " + std::to_string(options.warmup));
  return options;
}

// Fail before the expensive work when an output cannot be written.
void check_output(const std::string& path, const std::string& suffix) {
  namespace fs = std::filesystem;
  const fs::path dest(path);
  if (dest.extension() != suffix) throw dmphn::Error("output " + path + " must end in " + suffix);
  const fs::path parent = dest.has_parent_path() ? dest.parent_path() : fs::path(".");
  std::error_code ec;
  if (!fs::is_directory(parent, ec)) throw dmphn::Error("cannot write " + path + ": folder " + parent.string() + " does not exist");
  if (fs::is_directory(dest, ec)) throw dmphn::Error("cannot write " + path + ": it is a folder; give a file name");
}

int run(const Options& options) {
  if (options.list_backends) {
    for (const auto& name : dmphn::compiled_backends()) std::cout << name << "\n";
    return 0;
  }
  check_output(options.output, ".png");
  if (!options.npy.empty()) check_output(options.npy, ".npy");
  const std::string backend_name = options.backend.empty() ? dmphn::backend_for_path(options.model) : options.backend;
  auto backend = dmphn::make_backend(backend_name);
  const dmphn::Image image = dmphn::read_image(options.input);

  const auto begin = std::chrono::steady_clock::now();
  backend->load(options.model, options.device);
  const double load_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - begin).count();

  const dmphn::DeblurResult result = dmphn::deblur(*backend, image, options.repeat, options.warmup);
  dmphn::write_png(options.output, dmphn::tensor_to_image(result.output));
  if (!options.npy.empty()) dmphn::write_npy(options.npy, result.output);

  const auto block = backend->size_block();
  // sizes read width x height and say so, as the Python tools print them
  std::printf("model: %s (%s, %s, %s), size block %lldx%lld WxH\n", options.model.c_str(),
              backend->metadata().model.c_str(), backend_name.c_str(), options.device.c_str(),
              static_cast<long long>(block[1]), static_cast<long long>(block[0]));
  const bool padded = result.padded_height != image.height || result.padded_width != image.width;
  std::printf("image: %lldx%lld WxH, ", static_cast<long long>(image.width), static_cast<long long>(image.height));
  if (padded) {
    std::printf("padded to %lldx%lld WxH\n", static_cast<long long>(result.padded_width),
                static_cast<long long>(result.padded_height));
  } else {
    std::printf("whole image\n");
  }
  std::printf("load: %.1f ms\n", load_ms);
  std::printf("infer: mean %.2f ms, min %.2f ms over %d runs (%d warmup)\n", result.timing.mean_ms,
              result.timing.min_ms, result.timing.runs, options.warmup);
  std::printf("wrote %s%s%s\n", options.output.c_str(), options.npy.empty() ? "" : " and ", options.npy.c_str());
  return 0;
}

// The first line only: SDK messages (LibTorch, ONNX Runtime) may carry context lines.
std::string one_line(const std::string& message) {
  const std::string line = message.substr(0, message.find('\n'));
  return line.empty() ? "unknown error" : line;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(parse_args(argc, argv));
  } catch (const dmphn::Error& exc) {
    std::cerr << "error: " << one_line(exc.what()) << std::endl;
    return 2;
  } catch (const std::exception& exc) {
    std::cerr << "error: unexpected failure: " << one_line(exc.what()) << " (please report it)" << std::endl;
    return 3;
  }
}
