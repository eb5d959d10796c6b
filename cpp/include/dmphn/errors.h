// Errors the user can fix (bad file, wrong shape, unknown backend): one line, exit code 2.
#pragma once

#include <stdexcept>
#include <string>

namespace dmphn {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& message) : std::runtime_error(message) {}
};

}  // namespace dmphn
