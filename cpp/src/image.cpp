#include "dmphn/image.h"

#include <png.h>

#include <algorithm>
#include <cmath>
#include <csetjmp>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <memory>

#ifdef DMPHN_WITH_JPEG
#include <jpeglib.h>
#endif

#include "dmphn/errors.h"
#include "dmphn/fileio.h"

// libpng and libjpeg report errors by longjmp. Each reader below keeps every object the jump
// could skip on the heap (owned by a unique_ptr created before setjmp and never reassigned),
// so nothing with a destructor is left half-updated when the jump lands.

namespace dmphn {
namespace {

struct FileCloser {
  void operator()(FILE* file) const { std::fclose(file); }
};
using FilePtr = std::unique_ptr<FILE, FileCloser>;

struct DecodeState {
  std::vector<unsigned char> pixels;  // interleaved RGB, 1 or 2 bytes per sample (big endian)
  std::vector<unsigned char*> rows;
};

// ---- PNG ---------------------------------------------------------------------------------
struct PngErrorState {
  char message[256] = "";
};

void png_error_handler(png_structp png, png_const_charp message) {
  auto* state = static_cast<PngErrorState*>(png_get_error_ptr(png));
  std::snprintf(state->message, sizeof(state->message), "%s", message);
  png_longjmp(png, 1);
}

void png_warning_handler(png_structp, png_const_charp) {}  // e.g. "iCCP: known incorrect sRGB profile"

Image read_png(FILE* file, const std::string& path) {
  auto error = std::make_unique<PngErrorState>();
  auto state = std::make_unique<DecodeState>();
  png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, error.get(), png_error_handler, png_warning_handler);
  png_infop info = png ? png_create_info_struct(png) : nullptr;
  if (!info) {
    png_destroy_read_struct(&png, nullptr, nullptr);
    throw Error("cannot decode image " + path + ": out of memory");
  }
  auto image = std::make_unique<Image>();
  if (setjmp(png_jmpbuf(png))) {
    png_destroy_read_struct(&png, &info, nullptr);
    throw Error("cannot decode image " + path + ": corrupt, truncated or unsupported PNG (libpng: " + error->message + ")");
  }
  png_init_io(png, file);
  png_read_info(png, info);
  const int color_type = png_get_color_type(png, info);
  const int bit_depth = png_get_bit_depth(png, info);
  // Same pixels as OpenCV's IMREAD_UNCHANGED followed by cvtColor(...2RGB): no gamma
  // correction, no alpha compositing, 16 bits kept.
  if (color_type == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(png);
  if (color_type == PNG_COLOR_TYPE_GRAY && bit_depth < 8) png_set_expand_gray_1_2_4_to_8(png);
  if (color_type & PNG_COLOR_MASK_ALPHA) png_set_strip_alpha(png);
  if (color_type == PNG_COLOR_TYPE_GRAY || color_type == PNG_COLOR_TYPE_GRAY_ALPHA) png_set_gray_to_rgb(png);
  png_set_interlace_handling(png);
  png_read_update_info(png, info);

  image->height = png_get_image_height(png, info);
  image->width = png_get_image_width(png, info);
  const int depth = png_get_bit_depth(png, info);
  const size_t row_bytes = png_get_rowbytes(png, info);
  if (png_get_channels(png, info) != 3 || (depth != 8 && depth != 16)) {
    png_error(png, "unexpected channel count or bit depth after conversion");
  }
  state->pixels.resize(row_bytes * static_cast<size_t>(image->height));
  state->rows.resize(static_cast<size_t>(image->height));
  for (int64_t row = 0; row < image->height; ++row) state->rows[row] = state->pixels.data() + row * row_bytes;
  png_read_image(png, state->rows.data());
  png_read_end(png, nullptr);
  png_destroy_read_struct(&png, &info, nullptr);

  const size_t count = static_cast<size_t>(image->height * image->width * 3);
  image->rgb.resize(count);
  if (depth == 8) {
    for (size_t i = 0; i < count; ++i) image->rgb[i] = static_cast<float>(state->pixels[i]) / 255.0f;
  } else {
    for (size_t i = 0; i < count; ++i) {
      const unsigned value = (state->pixels[2 * i] << 8) | state->pixels[2 * i + 1];
      image->rgb[i] = static_cast<float>(value) / 65535.0f;
    }
  }
  return std::move(*image);
}

#ifdef DMPHN_WITH_JPEG
// ---- JPEG --------------------------------------------------------------------------------
struct JpegError {
  jpeg_error_mgr manager;  // first member: libjpeg hands back a pointer to it
  std::jmp_buf jump;
  char message[JMSG_LENGTH_MAX];
};

void jpeg_error_handler(j_common_ptr cinfo) {
  auto* error = reinterpret_cast<JpegError*>(cinfo->err);
  (*cinfo->err->format_message)(cinfo, error->message);
  std::longjmp(error->jump, 1);
}

void jpeg_silence(j_common_ptr, int) {}  // corrupt-data warnings: libjpeg recovers, as OpenCV does

Image read_jpeg(FILE* file, const std::string& path) {
  auto error = std::make_unique<JpegError>();
  auto cinfo = std::make_unique<jpeg_decompress_struct>();
  auto state = std::make_unique<DecodeState>();
  auto image = std::make_unique<Image>();
  cinfo->err = jpeg_std_error(&error->manager);
  error->manager.error_exit = jpeg_error_handler;
  error->manager.emit_message = jpeg_silence;
  if (setjmp(error->jump)) {
    jpeg_destroy_decompress(cinfo.get());
    throw Error("cannot decode image " + path + ": corrupt, truncated or unsupported JPEG (libjpeg: " + error->message + ")");
  }
  jpeg_create_decompress(cinfo.get());
  jpeg_stdio_src(cinfo.get(), file);
  jpeg_read_header(cinfo.get(), TRUE);
  if (cinfo->jpeg_color_space == JCS_CMYK || cinfo->jpeg_color_space == JCS_YCCK) {
    std::snprintf(error->message, sizeof(error->message), "CMYK JPEG is not supported");
    std::longjmp(error->jump, 1);
  }
  cinfo->out_color_space = JCS_RGB;  // grey is repeated to 3 channels
  jpeg_start_decompress(cinfo.get());
  image->height = cinfo->output_height;
  image->width = cinfo->output_width;
  const size_t row_bytes = static_cast<size_t>(image->width) * 3;
  state->pixels.resize(row_bytes * static_cast<size_t>(image->height));
  while (cinfo->output_scanline < cinfo->output_height) {
    unsigned char* row = state->pixels.data() + cinfo->output_scanline * row_bytes;
    jpeg_read_scanlines(cinfo.get(), &row, 1);
  }
  jpeg_finish_decompress(cinfo.get());
  jpeg_destroy_decompress(cinfo.get());
  image->rgb.resize(state->pixels.size());
  for (size_t i = 0; i < state->pixels.size(); ++i) image->rgb[i] = static_cast<float>(state->pixels[i]) / 255.0f;
  return std::move(*image);
}
#endif

}  // namespace

bool jpeg_supported() {
#ifdef DMPHN_WITH_JPEG
  return true;
#else
  return false;
#endif
}

Image read_image(const std::string& path) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec)) throw Error("image not found: " + path);
  FilePtr file(std::fopen(path.c_str(), "rb"));
  if (!file) throw Error("cannot open image " + path + ": " + std::strerror(errno));
  unsigned char magic[8] = {};
  const size_t got = std::fread(magic, 1, sizeof(magic), file.get());
  std::rewind(file.get());
  Image image;
  if (got == 8 && png_sig_cmp(magic, 0, 8) == 0) {
    image = read_png(file.get(), path);
  } else if (got >= 3 && magic[0] == 0xFF && magic[1] == 0xD8 && magic[2] == 0xFF) {
#ifdef DMPHN_WITH_JPEG
    image = read_jpeg(file.get(), path);
#else
    throw Error("cannot decode image " + path + ": JPEG support was not compiled in (libjpeg not found); use PNG");
#endif
  } else {
    throw Error("cannot decode image " + path + ": corrupt or unsupported format (PNG" +
                std::string(jpeg_supported() ? " or JPEG" : "") + " expected)");
  }
  if (image.height <= 0 || image.width <= 0) throw Error("cannot decode image " + path + ": empty image");
  return image;
}

void write_png(const std::string& path, const Image& image) {
  const size_t count = static_cast<size_t>(image.height * image.width * 3);
  if (image.rgb.size() != count) throw Error("cannot write " + path + ": pixel buffer does not match its size");
  std::vector<unsigned char> pixels(count);
  for (size_t i = 0; i < count; ++i) {
    const float value = image.rgb[i];
    if (!std::isfinite(value)) throw Error("cannot write " + path + ": image holds NaN or Inf");
    // float32 arithmetic, then truncation: write_image's (clip(x, 0, 1) * 255.0 + 0.5).astype(uint8)
    const float scaled = std::min(std::max(value, 0.0f), 1.0f) * 255.0f + 0.5f;
    pixels[i] = static_cast<unsigned char>(scaled);
  }
  AtomicFile file(path);
  png_image png;
  std::memset(&png, 0, sizeof(png));
  png.version = PNG_IMAGE_VERSION;
  png.width = static_cast<png_uint_32>(image.width);
  png.height = static_cast<png_uint_32>(image.height);
  png.format = PNG_FORMAT_RGB;
  if (!png_image_write_to_file(&png, file.temp_path().c_str(), 0, pixels.data(), 0, nullptr)) {
    const std::string message = png.message;
    png_image_free(&png);
    throw Error("cannot write " + path + ": " + message);
  }
  file.commit();
}

Tensor image_to_tensor(const Image& image) {
  const int64_t h = image.height, w = image.width, plane = h * w;
  Tensor tensor({1, 3, h, w});
  for (int64_t i = 0; i < plane; ++i) {
    for (int64_t c = 0; c < 3; ++c) tensor.data[c * plane + i] = image.rgb[i * 3 + c];
  }
  return tensor;
}

Image tensor_to_image(const Tensor& tensor) {
  if (tensor.shape.size() != 4 || tensor.shape[0] != 1 || tensor.shape[1] != 3) {
    throw Error("expected a (1, 3, H, W) tensor, got " + shape_string(tensor.shape));
  }
  Image image;
  image.height = tensor.shape[2];
  image.width = tensor.shape[3];
  const int64_t plane = image.height * image.width;
  image.rgb.resize(static_cast<size_t>(plane * 3));
  for (int64_t i = 0; i < plane; ++i) {
    for (int64_t c = 0; c < 3; ++c) image.rgb[i * 3 + c] = tensor.data[c * plane + i];
  }
  return image;
}

}  // namespace dmphn
