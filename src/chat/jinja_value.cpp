#include "chat/jinja_value.h"

#include <cmath>
#include <cstdio>
#include <cstdlib>

#include "chat/jinja_failure.h"
#include "tokenizer/unicode.h"

namespace thinkeys::jinja {

Value Value::make_namespace(Json object) {
  Value v;
  v.kind_ = Kind::Namespace;
  v.ns_ = std::make_shared<Json>(std::move(object));
  v.name_ = "namespace";
  return v;
}

Value Value::callable(std::string name, Function fn) {
  Value v;
  v.kind_ = Kind::Callable;
  v.fn_ = std::make_shared<const Function>(std::move(fn));
  v.name_ = std::move(name);
  return v;
}

Json Value::to_json(const char* what) const {
  switch (kind_) {
    case Kind::Data:
      return data_;
    case Kind::Namespace:
      return *ns_;
    case Kind::Undefined:
      throw Failure(std::string(what) + " of undefined value '" + name_ + "'");
    case Kind::Callable:
      break;
  }
  throw Failure(std::string(what) + " of function '" + name_ + "'");
}

bool truthy(const Value& v) {
  if (v.is_undefined()) return false;
  if (!v.is_data()) return true;
  const Json& j = v.data();
  switch (j.type()) {
    case Json::value_t::null:
      return false;
    case Json::value_t::boolean:
      return j.get<bool>();
    case Json::value_t::number_integer:
    case Json::value_t::number_unsigned:
      return j.get<int64_t>() != 0;
    case Json::value_t::number_float:
      return j.get<double>() != 0.0;
    case Json::value_t::string:
      return !j.get_ref<const std::string&>().empty();
    case Json::value_t::array:
    case Json::value_t::object:
      return !j.empty();
    default:
      return true;
  }
}

std::string type_name(const Value& v) {
  switch (v.kind()) {
    case Value::Kind::Undefined:
      return "undefined";
    case Value::Kind::Namespace:
      return "namespace";
    case Value::Kind::Callable:
      return "function";
    case Value::Kind::Data:
      break;
  }
  const Json& j = v.data();
  if (j.is_null()) return "none";
  if (j.is_boolean()) return "boolean";
  if (j.is_number_integer()) return "integer";
  if (j.is_number_float()) return "float";
  if (j.is_string()) return "string";
  if (j.is_array()) return "list";
  return "dict";
}

namespace {

// Python's repr() of a float: the shortest digits that read back the same,
// fixed notation for exponents -4..15 (with ".0" for whole numbers), else
// d.ddde+XX.
std::string float_repr(double d) {
  if (std::isnan(d)) return "nan";
  if (std::isinf(d)) return d > 0 ? "inf" : "-inf";
  if (d == 0) return std::signbit(d) ? "-0.0" : "0.0";
  char buf[48];
  for (int precision = 0; precision <= 16; ++precision) {
    std::snprintf(buf, sizeof buf, "%.*e", precision, d);
    if (std::strtod(buf, nullptr) == d) break;
  }
  const std::string s = buf;
  const auto e = s.find('e');
  const int exponent = std::stoi(s.substr(e + 1));
  std::string digits;
  for (char c : s.substr(0, e)) {
    if (c >= '0' && c <= '9') digits += c;
  }
  const std::string sign = d < 0 ? "-" : "";
  if (exponent < -4 || exponent >= 16) {
    std::string mant = digits.substr(0, 1);
    if (digits.size() > 1) mant += "." + digits.substr(1);
    char ex[8];
    std::snprintf(ex, sizeof ex, "e%c%02d", exponent < 0 ? '-' : '+', std::abs(exponent));
    return sign + mant + ex;
  }
  std::string out;
  if (exponent < 0) {
    out = "0." + std::string(static_cast<std::size_t>(-exponent - 1), '0') + digits;
  } else if (static_cast<int>(digits.size()) <= exponent + 1) {
    out = digits + std::string(static_cast<std::size_t>(exponent + 1) - digits.size(), '0') + ".0";
  } else {
    out = digits.substr(0, static_cast<std::size_t>(exponent + 1)) + "." +
          digits.substr(static_cast<std::size_t>(exponent + 1));
  }
  return sign + out;
}

std::string int_text(const Json& j) {
  return j.is_number_unsigned() ? std::to_string(j.get<uint64_t>())
                                : std::to_string(j.get<int64_t>());
}

std::string string_repr(const std::string& s) {
  const bool has_single = s.find('\'') != std::string::npos;
  const bool has_double = s.find('"') != std::string::npos;
  const char quote = has_single && !has_double ? '"' : '\'';
  std::string out(1, quote);
  for (char32_t c : to_code_points(s)) {
    if (c == static_cast<char32_t>(quote) || c == U'\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c == U'\n') {
      out += "\\n";
    } else if (c == U'\r') {
      out += "\\r";
    } else if (c == U'\t') {
      out += "\\t";
    } else if (c < 0x20 || c == 0x7F) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", static_cast<unsigned>(c));
      out += buf;
    } else {
      unicode::append_utf8(out, c);
    }
  }
  out += quote;
  return out;
}

void dump_json(const Json& j, std::optional<int> indent, int depth, std::string& out) {
  auto newline = [&](int level) {
    out += '\n';
    out.append(static_cast<std::size_t>(*indent * level), ' ');
  };
  if (j.is_array() || j.is_object()) {
    const bool array = j.is_array();
    if (j.empty()) {
      out += array ? "[]" : "{}";
      return;
    }
    out += array ? '[' : '{';
    bool first = true;
    for (auto it = j.begin(); it != j.end(); ++it) {
      if (!first) out += indent ? "," : ", ";
      first = false;
      if (indent) newline(depth + 1);
      if (!array) {
        out += Json(it.key()).dump();
        out += ": ";
      }
      dump_json(it.value(), indent, depth + 1, out);
    }
    if (indent) newline(depth);
    out += array ? ']' : '}';
    return;
  }
  if (j.is_number_float()) {
    const double d = j.get<double>();
    if (std::isnan(d)) {
      out += "NaN";
    } else if (std::isinf(d)) {
      out += d > 0 ? "Infinity" : "-Infinity";
    } else {
      out += float_repr(d);
    }
    return;
  }
  // Strings: nlohmann escapes exactly what Python's json.dumps escapes with
  // ensure_ascii=False (quote, backslash, control characters).
  out += j.dump(-1, ' ', false, Json::error_handler_t::strict);
}

}  // namespace

std::string python_repr(const Json& j) {
  switch (j.type()) {
    case Json::value_t::null:
      return "None";
    case Json::value_t::boolean:
      return j.get<bool>() ? "True" : "False";
    case Json::value_t::number_integer:
    case Json::value_t::number_unsigned:
      return int_text(j);
    case Json::value_t::number_float:
      return float_repr(j.get<double>());
    case Json::value_t::string:
      return string_repr(j.get_ref<const std::string&>());
    case Json::value_t::array: {
      std::string out = "[";
      for (std::size_t i = 0; i < j.size(); ++i) out += (i ? ", " : "") + python_repr(j[i]);
      return out + "]";
    }
    case Json::value_t::object: {
      std::string out = "{";
      bool first = true;
      for (auto it = j.begin(); it != j.end(); ++it) {
        out += (first ? "" : ", ") + string_repr(it.key()) + ": " + python_repr(it.value());
        first = false;
      }
      return out + "}";
    }
    default:
      throw Failure("cannot print a value of JSON type " + std::string(j.type_name()));
  }
}

std::string to_str(const Value& v) {
  switch (v.kind()) {
    case Value::Kind::Undefined:
      return "";
    case Value::Kind::Namespace:
      return "<Namespace " + python_repr(v.namespace_object()) + ">";
    case Value::Kind::Callable:
      return "<function " + v.name() + ">";
    case Value::Kind::Data:
      break;
  }
  if (v.data().is_string()) return v.data().get<std::string>();
  return python_repr(v.data());
}

std::string to_json_text(const Json& j, std::optional<int> indent) {
  std::string out;
  dump_json(j, indent, 0, out);
  return out;
}

namespace {

bool is_number(const Json& j) { return j.is_number() || j.is_boolean(); }

double as_double(const Json& j) {
  if (j.is_boolean()) return j.get<bool>() ? 1.0 : 0.0;
  return j.get<double>();
}

}  // namespace

bool equal(const Value& a, const Value& b) {
  if (a.is_undefined() || b.is_undefined()) return a.is_undefined() && b.is_undefined();
  if (!a.is_data() || !b.is_data()) return false;
  const Json& x = a.data();
  const Json& y = b.data();
  if (is_number(x) && is_number(y)) {
    if (x.is_number_integer() && y.is_number_integer()) return x.get<int64_t>() == y.get<int64_t>();
    return as_double(x) == as_double(y);
  }
  if (x.is_array() && y.is_array()) {
    if (x.size() != y.size()) return false;
    for (std::size_t i = 0; i < x.size(); ++i) {
      if (!equal(Value(x[i]), Value(y[i]))) return false;
    }
    return true;
  }
  if (x.is_object() && y.is_object()) {
    if (x.size() != y.size()) return false;
    for (auto it = x.begin(); it != x.end(); ++it) {
      auto other = y.find(it.key());
      if (other == y.end() || !equal(Value(it.value()), Value(*other))) return false;
    }
    return true;
  }
  return x == y;
}

std::optional<bool> less(const Value& a, const Value& b) {
  if (!a.is_data() || !b.is_data()) return std::nullopt;
  const Json& x = a.data();
  const Json& y = b.data();
  if (is_number(x) && is_number(y)) {
    if (x.is_number_integer() && y.is_number_integer()) return x.get<int64_t>() < y.get<int64_t>();
    return as_double(x) < as_double(y);
  }
  if (x.is_string() && y.is_string()) {
    // Python compares code points; UTF-8 byte order is the same order.
    return x.get_ref<const std::string&>() < y.get_ref<const std::string&>();
  }
  if (x.is_array() && y.is_array()) {
    for (std::size_t i = 0; i < x.size() && i < y.size(); ++i) {
      if (equal(Value(x[i]), Value(y[i]))) continue;
      return less(Value(x[i]), Value(y[i]));
    }
    return x.size() < y.size();
  }
  return std::nullopt;
}

std::u32string to_code_points(const std::string& s) {
  std::u32string out;
  out.reserve(s.size());
  std::size_t i = 0;
  while (i < s.size()) {
    const auto b = static_cast<unsigned char>(s[i]);
    int len = b < 0x80 ? 1 : (b >> 5) == 6 ? 2 : (b >> 4) == 14 ? 3 : (b >> 3) == 30 ? 4 : 0;
    if (len == 0 || i + len > s.size()) throw Failure("string is not valid UTF-8");
    char32_t c = len == 1 ? b : len == 2 ? (b & 0x1F) : len == 3 ? (b & 0x0F) : (b & 0x07);
    for (int k = 1; k < len; ++k) {
      const auto cont = static_cast<unsigned char>(s[i + k]);
      if ((cont & 0xC0) != 0x80) throw Failure("string is not valid UTF-8");
      c = (c << 6) | (cont & 0x3F);
    }
    out += c;
    i += static_cast<std::size_t>(len);
  }
  return out;
}

std::string from_code_points(std::u32string_view s) {
  std::string out;
  out.reserve(s.size());
  for (char32_t c : s) unicode::append_utf8(out, c);
  return out;
}

bool is_python_space(char32_t c) {
  return (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x20) || c == 0x85 || c == 0xA0 ||
         c == 0x1680 || (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F ||
         c == 0x205F || c == 0x3000;
}

std::optional<Json> python_items(const Value& v) {
  if (v.is_undefined()) return Json::array();
  if (!v.is_data()) return std::nullopt;
  const Json& j = v.data();
  if (j.is_array()) return j;
  if (j.is_object()) {
    Json keys = Json::array();
    for (auto it = j.begin(); it != j.end(); ++it) keys.push_back(it.key());
    return keys;
  }
  if (j.is_string()) {
    Json chars = Json::array();
    for (char32_t c : to_code_points(j.get<std::string>()))
      chars.push_back(from_code_points({&c, 1}));
    return chars;
  }
  return std::nullopt;
}

}  // namespace thinkeys::jinja
