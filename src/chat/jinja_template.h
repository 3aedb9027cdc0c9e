#pragma once
// A parsed Jinja template and its evaluator. Parsing happens once; render()
// evaluates the tree over JSON variables with Python/Jinja semantics, as
// Hugging Face transformers configures Jinja (trim_blocks, lstrip_blocks,
// loop controls, tojson without ASCII escaping, raise_exception,
// strftime_now, an immutable sandbox).
#include <memory>
#include <string>
#include <string_view>

#include "chat/jinja_value.h"

namespace thinkeys::jinja {

struct Stmt;

class Template {
 public:
  // Throws thinkeys::Error naming the line on syntax errors and unsupported
  // statements.
  explicit Template(std::string_view source);
  ~Template();
  Template(Template&&) noexcept;
  Template& operator=(Template&&) noexcept;

  // `variables` is a JSON object of the template's inputs. Throws
  // thinkeys::Error naming the line and construct for anything the template
  // does that this interpreter does not implement, and for raise_exception().
  std::string render(const Json& variables) const;

 private:
  struct Tree;
  std::unique_ptr<Tree> tree_;
};

}  // namespace thinkeys::jinja
