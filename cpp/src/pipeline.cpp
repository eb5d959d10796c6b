#include "dmphn/pipeline.h"

#include <algorithm>
#include <chrono>

#include "dmphn/errors.h"
#include "dmphn/geometry.h"

namespace dmphn {

DeblurResult deblur(Backend& backend, const Image& image, int repeat, int warmup) {
  if (repeat < 1) throw Error("--repeat must be at least 1, got " + std::to_string(repeat));
  if (warmup < 0) throw Error("--warmup must be at least 0, got " + std::to_string(warmup));
  const Tensor input = image_to_tensor(image);
  const Tensor padded = pad_to_block(input, backend.size_block());
  const ArtifactMetadata& meta = backend.metadata();
  if (!meta.accepts(padded.shape)) {
    const auto block = backend.size_block();
    throw Error("model input shape " + meta.input_shape_string() + " does not fit the image: " +
                std::to_string(image.width) + "x" + std::to_string(image.height) + " WxH padded to the size block " +
                std::to_string(block[1]) + "x" + std::to_string(block[0]) + " WxH is " + shape_string(padded.shape) +
                "; export the model for that shape (or with dynamic H/W)");
  }

  for (int i = 0; i < warmup; ++i) backend.infer(padded);
  DeblurResult result;
  result.padded_height = padded.shape[2];
  result.padded_width = padded.shape[3];
  Tensor output;
  double total_ms = 0.0;
  for (int i = 0; i < repeat; ++i) {
    const auto begin = std::chrono::steady_clock::now();
    output = backend.infer(padded);
    const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - begin).count();
    total_ms += ms;
    result.timing.min_ms = i == 0 ? ms : std::min(result.timing.min_ms, ms);
  }
  result.timing.runs = repeat;
  result.timing.mean_ms = total_ms / repeat;
  if (output.shape != padded.shape) {
    throw Error(backend.name() + " returned " + shape_string(output.shape) + " for input " + shape_string(padded.shape));
  }
  result.output = crop_to(output, image.height, image.width);
  return result;
}

}  // namespace dmphn
