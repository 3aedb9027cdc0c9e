#pragma once
// A failure inside a template operation (bad operand types, an unknown
// filter, raise_exception). The evaluator turns it into a thinkeys::Error
// that names the template line, so the parts below it need not know lines.
#include <stdexcept>
#include <string>

namespace thinkeys::jinja {

class Failure : public std::runtime_error {
 public:
  explicit Failure(const std::string& message) : std::runtime_error(message) {}
};

}  // namespace thinkeys::jinja
