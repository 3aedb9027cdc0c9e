#pragma once
// Values of the Jinja interpreter. Data is JSON (insertion-ordered, as Python
// dicts are); beside it live the three things JSON cannot hold: undefined,
// a namespace() (mutable through `set ns.x`), and a callable.
// Strings follow Python: length, indexing and slicing count code points.
#include <cstdint>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace thinkeys::jinja {

using Json = nlohmann::ordered_json;

class Value;

struct CallArgs {
  std::vector<Value> positional;
  std::vector<std::pair<std::string, Value>> keyword;
};

using Function = std::function<Value(CallArgs&)>;

class Value {
 public:
  enum class Kind { Undefined, Data, Namespace, Callable };

  Value() = default;                                         // undefined
  Value(Json j) : kind_(Kind::Data), data_(std::move(j)) {}  // NOLINT: implicit by design
  static Value undefined(std::string name) {
    Value v;
    v.name_ = std::move(name);
    return v;
  }
  static Value make_namespace(Json object);
  static Value callable(std::string name, Function fn);

  Kind kind() const { return kind_; }
  bool is_undefined() const { return kind_ == Kind::Undefined; }
  bool is_data() const { return kind_ == Kind::Data; }
  bool is_namespace() const { return kind_ == Kind::Namespace; }
  bool is_callable() const { return kind_ == Kind::Callable; }
  bool is_none() const { return is_data() && data_.is_null(); }
  bool is_string() const { return is_data() && data_.is_string(); }

  const Json& data() const { return data_; }
  Json& data() { return data_; }
  Json& namespace_object() const { return *ns_; }
  const Function& function() const { return *fn_; }
  // What an undefined value or a callable was called in the template, for messages.
  const std::string& name() const { return name_; }

  // JSON for places that need plain data (tojson, storing in a list).
  Json to_json(const char* what) const;

 private:
  Kind kind_ = Kind::Undefined;
  Json data_;
  std::shared_ptr<Json> ns_;
  std::shared_ptr<const Function> fn_;
  std::string name_;
};

// Python semantics on the values templates use.
bool truthy(const Value& v);
std::string type_name(const Value& v);
std::string to_str(const Value& v);      // str(v), how {{ v }} prints
std::string python_repr(const Json& j);  // repr() inside lists and dicts
std::string to_json_text(const Json& j,
                         std::optional<int> indent);  // json.dumps, ensure_ascii=False
bool equal(const Value& a, const Value& b);
// a < b as Python orders numbers, strings and lists; nullopt when incomparable.
std::optional<bool> less(const Value& a, const Value& b);
// What Python iterates a value as: a list as itself, a dict by its keys, a
// string by character, undefined as nothing; nullopt for anything else (the
// caller words the error for its context).
std::optional<Json> python_items(const Value& v);

// UTF-8 strings as code points (Python's str indexing).
std::u32string to_code_points(const std::string& s);
std::string from_code_points(std::u32string_view s);
bool is_python_space(char32_t c);

}  // namespace thinkeys::jinja
