#include "dmphn/fileio.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "dmphn/errors.h"

namespace dmphn {
namespace fs = std::filesystem;

AtomicFile::AtomicFile(std::string destination) : destination_(std::move(destination)) {
  const fs::path dest(destination_);
  const fs::path parent = dest.has_parent_path() ? dest.parent_path() : fs::path(".");
  std::error_code ec;
  if (!fs::is_directory(parent, ec)) {
    throw Error("cannot write " + destination_ + ": folder " + parent.string() + " does not exist");
  }
  if (fs::is_directory(dest, ec)) throw Error("cannot write " + destination_ + ": it is a folder; give a file name");
  // The suffix stays last: readers of the temporary file may pick the format from it.
  const std::string suffix = dest.extension().string();
  std::string name = (parent / ("." + dest.filename().string() + ".XXXXXX" + suffix)).string();
  const int fd = mkstemps(name.data(), static_cast<int>(suffix.size()));
  if (fd < 0) throw Error("cannot write " + destination_ + ": " + std::strerror(errno));
  close(fd);
  temp_ = name;
}

AtomicFile::~AtomicFile() {
  if (!committed_) std::remove(temp_.c_str());
}

void AtomicFile::commit() {
  // mkstemp creates the file private (0600); give it the mode a plain open() would have.
  const mode_t mask = umask(0);
  umask(mask);
  chmod(temp_.c_str(), 0666 & ~mask);
  if (std::rename(temp_.c_str(), destination_.c_str()) != 0) {
    throw Error("cannot write " + destination_ + ": " + std::strerror(errno));
  }
  committed_ = true;
}

void write_npy(const std::string& path, const Tensor& tensor) {
  // NPY format 1.0: magic, version, little-endian uint16 header length, then a Python dict
  // literal padded with spaces so that the data starts at a multiple of 64 bytes.
  std::ostringstream dict;
  dict << "{'descr': '<f4', 'fortran_order': False, 'shape': (";
  for (size_t i = 0; i < tensor.shape.size(); ++i) dict << (i ? ", " : "") << tensor.shape[i];
  dict << (tensor.shape.size() == 1 ? ",), }" : "), }");
  std::string header = dict.str();
  const size_t preamble = 10;  // "\x93NUMPY" + 2 version bytes + 2 length bytes
  header.append(64 - (preamble + header.size() + 1) % 64, ' ');
  header.push_back('\n');
  static_assert(sizeof(float) == 4, "float32 expected");

  AtomicFile file(path);
  {
    std::ofstream out(file.temp_path(), std::ios::binary | std::ios::trunc);
    const uint16_t length = static_cast<uint16_t>(header.size());
    const char length_le[2] = {static_cast<char>(length & 0xff), static_cast<char>(length >> 8)};
    out.write("\x93NUMPY\x01\x00", 8);
    out.write(length_le, 2);
    out.write(header.data(), static_cast<std::streamsize>(header.size()));
    // x86-64 and aarch64 are little endian, as '<f4' says.
    out.write(reinterpret_cast<const char*>(tensor.data.data()),
              static_cast<std::streamsize>(tensor.data.size() * sizeof(float)));
    out.flush();
    if (!out) throw Error("cannot write " + path + ": write failed");
  }
  file.commit();
}

}  // namespace dmphn
