#pragma once
// One exception type for every user-facing failure. The CLI prints what() as a
// single line and exits non-zero; nothing below the CLI prints or exits.
#include <stdexcept>
#include <string>

namespace thinkeys {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& message) : std::runtime_error(message) {}
};

}  // namespace thinkeys
