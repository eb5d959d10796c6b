// Atomic writes (as dmphn_core/fileio.py): write a temporary file beside the destination,
// rename it into place on success, remove it on failure.
#pragma once

#include <string>

#include "dmphn/tensor.h"

namespace dmphn {

class AtomicFile {
 public:
  // Checks that the folder exists and creates ".<name>.XXXXXX<suffix>" beside ``destination``.
  explicit AtomicFile(std::string destination);
  ~AtomicFile();  // removes the temporary file unless commit() succeeded
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;

  const std::string& temp_path() const { return temp_; }
  void commit();  // rename the temporary file to the destination

 private:
  std::string destination_;
  std::string temp_;
  bool committed_ = false;
};

// Write ``tensor`` as a NumPy .npy file (float32, little endian, C order, its own shape).
void write_npy(const std::string& path, const Tensor& tensor);

}  // namespace dmphn
