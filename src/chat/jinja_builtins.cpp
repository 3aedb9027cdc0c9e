#include "chat/jinja_builtins.h"

#include <locale.h>

#include <algorithm>
#include <cmath>
#include <ctime>
#include <cwctype>
#include <optional>
#include <string_view>
#include <vector>

#include "chat/jinja_failure.h"

namespace thinkeys::jinja {
namespace {

using Bound = std::vector<std::optional<Value>>;

// Binds positional and keyword arguments to parameter names, Python style.
Bound bind(CallArgs& args, const std::string& fn, std::initializer_list<const char*> names) {
  Bound out(names.size());
  if (args.positional.size() > names.size()) {
    throw Failure(fn + "() takes at most " + std::to_string(names.size()) + " argument(s), got " +
                  std::to_string(args.positional.size()));
  }
  for (std::size_t i = 0; i < args.positional.size(); ++i) out[i] = args.positional[i];
  for (auto& [key, value] : args.keyword) {
    std::size_t i = 0;
    for (const char* n : names) {
      if (key == n) break;
      ++i;
    }
    if (i == names.size())
      throw Failure(fn + "() got an unexpected keyword argument '" + key + "'");
    if (out[i]) throw Failure(fn + "() got multiple values for argument '" + key + "'");
    out[i] = value;
  }
  return out;
}

const std::string& need_string(const Value& v, const std::string& what) {
  if (!v.is_string()) throw Failure(what + " needs a string, got " + type_name(v));
  return v.data().get_ref<const std::string&>();
}

int64_t need_int(const Value& v, const std::string& what) {
  if (!v.is_data() || !(v.data().is_number_integer() || v.data().is_boolean())) {
    throw Failure(what + " needs an integer, got " + type_name(v));
  }
  return v.data().is_boolean() ? (v.data().get<bool>() ? 1 : 0) : v.data().get<int64_t>();
}

// Lists, and what Python iterates as one: strings by character, dicts by key.
Json as_list(const Value& v, const std::string& what) {
  if (v.is_namespace()) throw Failure(what + ": a namespace is not iterable");
  if (auto items = python_items(v)) return *std::move(items);
  throw Failure(what + ": " + type_name(v) + " is not iterable");
}

// Case mapping through the C.UTF-8 locale's Unicode tables.
locale_t utf8_locale() {
  static locale_t loc = newlocale(LC_CTYPE_MASK, "C.UTF-8", static_cast<locale_t>(nullptr));
  if (loc == static_cast<locale_t>(nullptr)) throw Failure("the C.UTF-8 locale is not available");
  return loc;
}

bool is_cased_letter(char32_t c) {
  const auto w = static_cast<wint_t>(c);
  return towupper_l(w, utf8_locale()) != w || towlower_l(w, utf8_locale()) != w;
}

// Python's str.upper()/lower(): the simple mappings plus the special cases
// text meets in practice (German sharp s uppercases to "SS"; a capital sigma
// ending a word lowercases to the final form). Other multi-character
// mappings (ligatures, a few archaic letters) are refused rather than guessed.
std::string map_case(const std::string& s, bool upper) {
  const std::u32string cps = to_code_points(s);
  std::u32string out;
  out.reserve(cps.size());
  for (std::size_t i = 0; i < cps.size(); ++i) {
    char32_t c = cps[i];
    if (c < 0x80) {
      if (upper && c >= 'a' && c <= 'z') c -= 32;
      if (!upper && c >= 'A' && c <= 'Z') c += 32;
      out += c;
      continue;
    }
    if (upper && c == 0xDF) {
      out += U"SS";
      continue;
    }
    if (upper && ((c >= 0xFB00 && c <= 0xFB06) || c == 0x0149 || c == 0x01F0 || c == 0x0390 ||
                  c == 0x03B0 || c == 0x0587 || (c >= 0x1E96 && c <= 0x1E9A) || c == 0x1E9E)) {
      throw Failure("upper-casing U+" + std::to_string(static_cast<uint32_t>(c)) +
                    " (a multi-letter case mapping) is not supported");
    }
    if (!upper && c == 0x03A3) {
      const bool after_letter = i > 0 && is_cased_letter(cps[i - 1]);
      const bool before_letter = i + 1 < cps.size() && is_cased_letter(cps[i + 1]);
      out += after_letter && !before_letter ? char32_t{0x03C2} : char32_t{0x03C3};
      continue;
    }
    if (!upper && c == 0x0130) {
      out += U"i\u0307";
      continue;
    }
    const auto w = static_cast<wint_t>(c);
    out +=
        static_cast<char32_t>(upper ? towupper_l(w, utf8_locale()) : towlower_l(w, utf8_locale()));
  }
  return from_code_points(out);
}

std::u32string strip_set(const std::optional<Value>& chars, const std::string& fn) {
  if (!chars || chars->is_none()) return {};
  return to_code_points(need_string(*chars, fn));
}

std::string strip(const std::string& s, const std::optional<Value>& chars, bool left, bool right,
                  const std::string& fn) {
  const std::u32string set = strip_set(chars, fn);
  auto strip_it = [&](char32_t c) {
    return set.empty() && !(chars && !chars->is_none()) ? is_python_space(c)
                                                        : set.find(c) != std::u32string::npos;
  };
  const std::u32string cps = to_code_points(s);
  std::size_t b = 0, e = cps.size();
  if (left) {
    while (b < e && strip_it(cps[b])) ++b;
  }
  if (right) {
    while (e > b && strip_it(cps[e - 1])) --e;
  }
  return from_code_points(std::u32string_view(cps).substr(b, e - b));
}

std::string replace_all(const std::string& s, const std::string& from, const std::string& to,
                        int64_t count) {
  std::string out;
  if (from.empty()) {
    // Python inserts `to` between characters (and at both ends).
    const std::u32string cps = to_code_points(s);
    int64_t done = 0;
    for (char32_t c : cps) {
      if (count < 0 || done < count) {
        out += to;
        ++done;
      }
      out += from_code_points({&c, 1});
    }
    if (count < 0 || done < count) out += to;
    return out;
  }
  std::size_t pos = 0;
  int64_t done = 0;
  while (count < 0 || done < count) {
    const std::size_t hit = s.find(from, pos);
    if (hit == std::string::npos) break;
    out.append(s, pos, hit - pos);
    out += to;
    pos = hit + from.size();
    ++done;
  }
  out.append(s, pos);
  return out;
}

Json split(const std::string& s, const std::optional<Value>& sep, int64_t maxsplit) {
  Json out = Json::array();
  if (!sep || sep->is_none()) {
    const std::u32string cps = to_code_points(s);
    std::size_t i = 0;
    int64_t splits = 0;
    while (i < cps.size()) {
      while (i < cps.size() && is_python_space(cps[i])) ++i;
      if (i == cps.size()) break;
      if (maxsplit >= 0 && splits == maxsplit) {
        std::size_t e = cps.size();
        while (e > i && is_python_space(cps[e - 1])) --e;
        out.push_back(from_code_points(std::u32string_view(cps).substr(i, e - i)));
        break;
      }
      std::size_t j = i;
      while (j < cps.size() && !is_python_space(cps[j])) ++j;
      out.push_back(from_code_points(std::u32string_view(cps).substr(i, j - i)));
      ++splits;
      i = j;
    }
    return out;
  }
  const std::string& d = need_string(*sep, "split");
  if (d.empty()) throw Failure("split(): empty separator");
  std::size_t pos = 0;
  int64_t splits = 0;
  while (maxsplit < 0 || splits < maxsplit) {
    const std::size_t hit = s.find(d, pos);
    if (hit == std::string::npos) break;
    out.push_back(s.substr(pos, hit - pos));
    pos = hit + d.size();
    ++splits;
  }
  out.push_back(s.substr(pos));
  return out;
}

bool affix_test(const std::string& s, const Value& affix, bool prefix, const std::string& fn) {
  auto one = [&](const Json& a) {
    if (!a.is_string()) throw Failure(fn + "() needs a string or a tuple of strings");
    const std::string& x = a.get_ref<const std::string&>();
    return prefix ? s.starts_with(x) : s.ends_with(x);
  };
  if (affix.is_data() && affix.data().is_array()) {
    return std::any_of(affix.data().begin(), affix.data().end(), one);
  }
  if (!affix.is_string()) throw Failure(fn + "() needs a string or a tuple of strings");
  return one(affix.data());
}

std::string capitalize(const std::string& s) {
  if (s.empty()) return s;
  std::u32string cps = to_code_points(s);
  const std::string first = map_case(from_code_points(std::u32string_view(cps).substr(0, 1)), true);
  return first + map_case(from_code_points(std::u32string_view(cps).substr(1)), false);
}

Value string_method(const std::string& s, const std::string& name, CallArgs& args) {
  const std::string fn = "str." + name;
  if (name == "strip" || name == "lstrip" || name == "rstrip") {
    Bound b = bind(args, fn, {"chars"});
    return Json(strip(s, b[0], name != "rstrip", name != "lstrip", fn));
  }
  if (name == "split") {
    Bound b = bind(args, fn, {"sep", "maxsplit"});
    return split(s, b[0], b[1] ? need_int(*b[1], fn) : -1);
  }
  if (name == "startswith" || name == "endswith") {
    Bound b = bind(args, fn, {"prefix"});
    if (!b[0]) throw Failure(fn + "() needs an argument");
    return Json(affix_test(s, *b[0], name == "startswith", fn));
  }
  if (name == "upper" || name == "lower") {
    bind(args, fn, {});
    return Json(map_case(s, name == "upper"));
  }
  if (name == "capitalize") {
    bind(args, fn, {});
    return Json(capitalize(s));
  }
  if (name == "replace") {
    Bound b = bind(args, fn, {"old", "new", "count"});
    if (!b[0] || !b[1]) throw Failure(fn + "() needs old and new");
    return Json(replace_all(s, need_string(*b[0], fn), need_string(*b[1], fn),
                            b[2] ? need_int(*b[2], fn) : -1));
  }
  if (name == "find" || name == "count") {
    Bound b = bind(args, fn, {"sub"});
    if (!b[0]) throw Failure(fn + "() needs an argument");
    const std::string& sub = need_string(*b[0], fn);
    if (name == "find") {
      const std::size_t hit = s.find(sub);
      if (hit == std::string::npos) return Json(-1);
      return Json(static_cast<int64_t>(to_code_points(s.substr(0, hit)).size()));
    }
    if (sub.empty()) return Json(static_cast<int64_t>(to_code_points(s).size() + 1));
    int64_t n = 0;
    for (std::size_t p = s.find(sub); p != std::string::npos; p = s.find(sub, p + sub.size())) ++n;
    return Json(n);
  }
  if (name == "join") {
    Bound b = bind(args, fn, {"iterable"});
    if (!b[0]) throw Failure(fn + "() needs an argument");
    std::string out;
    bool first = true;
    for (const Json& item : as_list(*b[0], fn)) {
      if (!item.is_string()) throw Failure(fn + "(): items must be strings");
      if (!first) out += s;
      out += item.get<std::string>();
      first = false;
    }
    return Json(out);
  }
  throw Failure("string method '" + name + "' is not supported");
}

Value dict_method(const Json& d, const std::string& name, CallArgs& args) {
  const std::string fn = "dict." + name;
  if (name == "items" || name == "keys" || name == "values") {
    bind(args, fn, {});
    Json out = Json::array();
    for (auto it = d.begin(); it != d.end(); ++it) {
      if (name == "items") out.push_back(Json::array({it.key(), it.value()}));
      if (name == "keys") out.push_back(it.key());
      if (name == "values") out.push_back(it.value());
    }
    return out;
  }
  if (name == "get") {
    Bound b = bind(args, fn, {"key", "default"});
    if (!b[0]) throw Failure(fn + "() needs a key");
    if (b[0]->is_string()) {
      auto it = d.find(b[0]->data().get<std::string>());
      if (it != d.end()) return *it;
    }
    return b[1] ? *b[1] : Value(Json(nullptr));
  }
  throw Failure("dict method '" + name + "' is not supported");
}

bool is_string_method(const std::string& n) {
  static const char* const kNames[] = {"strip",    "lstrip", "rstrip",    "split",   "startswith",
                                       "endswith", "upper",  "lower",     "replace", "find",
                                       "count",    "join",   "capitalize"};
  return std::any_of(std::begin(kNames), std::end(kNames), [&](const char* k) { return n == k; });
}

bool is_mutating_method(const std::string& n) {
  static const char* const kNames[] = {"append", "extend",     "insert",  "pop",  "remove", "clear",
                                       "update", "setdefault", "popitem", "sort", "reverse"};
  return std::any_of(std::begin(kNames), std::end(kNames), [&](const char* k) { return n == k; });
}

std::string json_filter(const Value& input, CallArgs& args) {
  Bound b = bind(args, "tojson", {"indent", "separators", "sort_keys", "ensure_ascii"});
  if (b[1] && !b[1]->is_none()) throw Failure("tojson(separators=...) is not supported");
  if (b[2] && truthy(*b[2])) throw Failure("tojson(sort_keys=true) is not supported");
  if (b[3] && truthy(*b[3])) throw Failure("tojson(ensure_ascii=true) is not supported");
  std::optional<int> indent;
  if (b[0] && !b[0]->is_none()) indent = static_cast<int>(need_int(*b[0], "tojson(indent)"));
  return to_json_text(input.to_json("tojson"), indent);
}

Value number_filter(const Value& input, bool to_int, const Value& fallback) {
  if (input.is_data()) {
    const Json& j = input.data();
    if (j.is_boolean())
      return to_int ? Json(j.get<bool>() ? 1 : 0) : Json(j.get<bool>() ? 1.0 : 0.0);
    if (j.is_number()) {
      return to_int ? Json(static_cast<int64_t>(j.get<double>())) : Json(j.get<double>());
    }
    if (j.is_string()) {
      const std::string s = strip(j.get<std::string>(), std::nullopt, true, true, "int");
      try {
        std::size_t used = 0;
        if (to_int) {
          const long long v = std::stoll(s, &used, 10);
          if (used == s.size()) return Json(static_cast<int64_t>(v));
        } else {
          const double v = std::stod(s, &used);
          if (used == s.size()) return Json(v);
        }
      } catch (const std::exception&) {
      }
    }
  }
  return fallback;
}

}  // namespace

Value method(const Value& receiver, const std::string& name) {
  if (!receiver.is_data()) return Value::undefined(name);
  const Json& j = receiver.data();
  if (is_mutating_method(name) && (j.is_array() || j.is_object())) {
    throw Failure("'" + name + "' would change a " + type_name(receiver) +
                  "; templates cannot modify values");
  }
  if (j.is_string() && is_string_method(name)) {
    std::string s = j.get<std::string>();
    return Value::callable(name,
                           [s, name](CallArgs& args) { return string_method(s, name, args); });
  }
  if (j.is_object() && (name == "items" || name == "keys" || name == "values" || name == "get")) {
    Json d = j;
    return Value::callable(name, [d, name](CallArgs& args) { return dict_method(d, name, args); });
  }
  return Value::undefined(name);
}

Value apply_filter(const std::string& name, const Value& input, CallArgs& args) {
  const std::string fn = name;
  if (name == "trim") {
    Bound b = bind(args, fn, {"chars"});
    return Json(strip(need_string(input, "trim"), b[0], true, true, fn));
  }
  if (name == "length" || name == "count") {
    bind(args, fn, {});
    if (input.is_string())
      return Json(static_cast<int64_t>(to_code_points(input.data().get<std::string>()).size()));
    if (input.is_data() && (input.data().is_array() || input.data().is_object())) {
      return Json(static_cast<int64_t>(input.data().size()));
    }
    if (input.is_namespace()) return Json(static_cast<int64_t>(input.namespace_object().size()));
    if (input.is_undefined()) return Json(0);
    throw Failure("length of " + type_name(input) + " is not defined");
  }
  if (name == "tojson") return Json(json_filter(input, args));
  if (name == "upper" || name == "lower") {
    bind(args, fn, {});
    return Json(map_case(to_str(input), name == "upper"));
  }
  if (name == "capitalize") {
    bind(args, fn, {});
    return Json(capitalize(to_str(input)));
  }
  if (name == "replace") {
    Bound b = bind(args, fn, {"old", "new", "count"});
    if (!b[0] || !b[1]) throw Failure("replace needs old and new");
    return Json(replace_all(to_str(input), need_string(*b[0], fn), need_string(*b[1], fn),
                            b[2] && !b[2]->is_none() ? need_int(*b[2], fn) : -1));
  }
  if (name == "default" || name == "d") {
    Bound b = bind(args, fn, {"default_value", "boolean"});
    const bool boolean = b[1] && truthy(*b[1]);
    const bool use_default = input.is_undefined() || (boolean && !truthy(input));
    if (!use_default) return input;
    return b[0] ? *b[0] : Value(Json(""));
  }
  if (name == "items") {
    bind(args, fn, {});
    if (input.is_undefined()) return Json::array();
    if (!input.is_data() || !input.data().is_object()) {
      throw Failure("items needs a dict, got " + type_name(input));
    }
    Json out = Json::array();
    for (auto it = input.data().begin(); it != input.data().end(); ++it) {
      out.push_back(Json::array({it.key(), it.value()}));
    }
    return out;
  }
  if (name == "first" || name == "last") {
    bind(args, fn, {});
    Json list = as_list(input, fn);
    if (list.empty()) return Value::undefined(name + " of an empty sequence");
    return name == "first" ? list.front() : list.back();
  }
  if (name == "list") {
    bind(args, fn, {});
    return as_list(input, fn);
  }
  if (name == "reverse") {
    bind(args, fn, {});
    if (input.is_string()) {
      std::u32string cps = to_code_points(input.data().get<std::string>());
      std::reverse(cps.begin(), cps.end());
      return Json(from_code_points(cps));
    }
    Json list = as_list(input, fn);
    std::reverse(list.begin(), list.end());
    return list;
  }
  if (name == "join") {
    Bound b = bind(args, fn, {"d", "attribute"});
    const std::string sep = b[0] ? to_str(*b[0]) : "";
    std::string out;
    bool first = true;
    for (const Json& item : as_list(input, fn)) {
      Value v(item);
      if (b[1]) {
        if (!item.is_object() || !item.contains(need_string(*b[1], fn))) {
          v = Value::undefined("attribute");
        } else {
          v = item.at(need_string(*b[1], fn));
        }
      }
      if (!first) out += sep;
      out += to_str(v);
      first = false;
    }
    return Json(out);
  }
  if (name == "string") {
    bind(args, fn, {});
    return Json(to_str(input));
  }
  if (name == "int" || name == "float") {
    Bound b = bind(args, fn, {"default"});
    const Value fallback = b[0] ? *b[0] : (name == "int" ? Value(Json(0)) : Value(Json(0.0)));
    return number_filter(input, name == "int", fallback);
  }
  if (name == "abs") {
    bind(args, fn, {});
    if (!input.is_data() || !input.data().is_number()) throw Failure("abs needs a number");
    if (input.data().is_number_float()) return Json(std::fabs(input.data().get<double>()));
    return Json(std::llabs(input.data().get<int64_t>()));
  }
  if (name == "round") {
    Bound b = bind(args, fn, {"precision", "method"});
    const int64_t precision = b[0] ? need_int(*b[0], fn) : 0;
    const std::string how = b[1] ? need_string(*b[1], fn) : "common";
    if (!input.is_data() || !input.data().is_number()) throw Failure("round needs a number");
    const double x = input.data().get<double>() * std::pow(10.0, static_cast<double>(precision));
    const double r = how == "ceil" ? std::ceil(x) : how == "floor" ? std::floor(x) : std::round(x);
    return Json(r / std::pow(10.0, static_cast<double>(precision)));
  }
  if (name == "safe") {
    bind(args, fn, {});
    return input;
  }
  if (name == "map" || name == "select" || name == "reject" || name == "selectattr" ||
      name == "rejectattr") {
    Json list = as_list(input, fn);
    Json out = Json::array();
    auto attribute_of = [&](const Json& item, const std::string& attr) -> Value {
      if (item.is_object()) {
        auto it = item.find(attr);
        if (it != item.end()) return *it;
      }
      return Value::undefined(attr);
    };
    if (name == "map") {
      CallArgs rest = args;
      for (auto it = rest.keyword.begin(); it != rest.keyword.end(); ++it) {
        if (it->first == "attribute") {
          const std::string attr = need_string(it->second, "map(attribute)");
          rest.keyword.erase(it);
          Value fallback;
          for (auto& [k, v] : rest.keyword) {
            if (k != "default")
              throw Failure("map() got an unexpected keyword argument '" + k + "'");
            fallback = v;
          }
          for (const Json& item : list) {
            Value v = attribute_of(item, attr);
            if (v.is_undefined() && !fallback.is_undefined()) v = fallback;
            out.push_back(v.to_json("map"));
          }
          return out;
        }
      }
      if (rest.positional.empty()) throw Failure("map() needs a filter name or attribute=");
      const std::string filter = need_string(rest.positional.front(), "map");
      rest.positional.erase(rest.positional.begin());
      for (const Json& item : list) {
        CallArgs copy = rest;
        out.push_back(apply_filter(filter, Value(item), copy).to_json("map"));
      }
      return out;
    }
    const bool by_attr = name.ends_with("attr");
    const bool keep_if = name.starts_with("select");
    CallArgs rest = args;
    if (!rest.keyword.empty()) throw Failure(name + "() takes no keyword arguments");
    std::string attr;
    if (by_attr) {
      if (rest.positional.empty()) throw Failure(name + "() needs an attribute name");
      attr = need_string(rest.positional.front(), name);
      rest.positional.erase(rest.positional.begin());
    }
    std::string test;
    if (!rest.positional.empty()) {
      test = need_string(rest.positional.front(), name);
      rest.positional.erase(rest.positional.begin());
    }
    for (const Json& item : list) {
      const Value v = by_attr ? attribute_of(item, attr) : Value(item);
      CallArgs copy = rest;
      const bool pass = test.empty() ? truthy(v) : apply_test(test, v, copy);
      if (pass == keep_if) out.push_back(item);
    }
    return out;
  }
  throw Failure("filter '" + name + "' is not supported");
}

bool apply_test(const std::string& name, const Value& v, CallArgs& args) {
  const Json& j = v.data();
  auto no_args = [&] { bind(args, "test " + name, {}); };
  auto one_arg = [&]() -> Value {
    Bound b = bind(args, "test " + name, {"other"});
    if (!b[0]) throw Failure("test '" + name + "' needs an argument");
    return *b[0];
  };
  if (name == "defined") return no_args(), !v.is_undefined();
  if (name == "undefined") return no_args(), v.is_undefined();
  if (name == "none") return no_args(), v.is_none();
  if (name == "string") return no_args(), v.is_string();
  if (name == "number") return no_args(), v.is_data() && j.is_number();
  if (name == "integer") return no_args(), v.is_data() && j.is_number_integer();
  if (name == "float") return no_args(), v.is_data() && j.is_number_float();
  if (name == "boolean") return no_args(), v.is_data() && j.is_boolean();
  if (name == "true") return no_args(), v.is_data() && j.is_boolean() && j.get<bool>();
  if (name == "false") return no_args(), v.is_data() && j.is_boolean() && !j.get<bool>();
  if (name == "mapping") return no_args(), v.is_namespace() || (v.is_data() && j.is_object());
  if (name == "sequence")
    return no_args(), v.is_data() && (j.is_array() || j.is_string() || j.is_object());
  if (name == "iterable")
    return no_args(),
           v.is_undefined() || (v.is_data() && (j.is_array() || j.is_string() || j.is_object()));
  if (name == "callable") return no_args(), v.is_callable();
  if (name == "lower" || name == "upper") {
    no_args();
    if (!v.is_string()) return false;
    const std::string& s = j.get_ref<const std::string&>();
    return map_case(s, name == "upper") == s && map_case(s, name != "upper") != s;
  }
  if (name == "even" || name == "odd") {
    no_args();
    const int64_t n = need_int(v, "test " + name);
    return (n % 2 == 0) == (name == "even");
  }
  if (name == "divisibleby") {
    const int64_t d = need_int(one_arg(), "divisibleby");
    if (d == 0) throw Failure("divisibleby 0");
    return need_int(v, "divisibleby") % d == 0;
  }
  if (name == "eq" || name == "equalto" || name == "==") return equal(v, one_arg());
  if (name == "ne" || name == "!=") return !equal(v, one_arg());
  if (name == "sameas") {
    const Value o = one_arg();
    if (v.is_data() && o.is_data() && (j.is_null() || j.is_boolean())) return j == o.data();
    return false;
  }
  for (const char* op : {"lt", "le", "gt", "ge", "<", "<=", ">", ">="}) {
    if (name != op) continue;
    const Value o = one_arg();
    const auto lt = less(v, o), gt = less(o, v);
    if (!lt || !gt) throw Failure("cannot compare " + type_name(v) + " with " + type_name(o));
    if (name == "lt" || name == "<") return *lt;
    if (name == "le" || name == "<=") return !*gt;
    if (name == "gt" || name == ">") return *gt;
    return !*lt;
  }
  if (name == "in") {
    const Value o = one_arg();
    for (const Json& item : as_list(o, "test in")) {
      if (equal(v, Value(item))) return true;
    }
    return false;
  }
  throw Failure("test '" + name + "' is not supported");
}

void add_globals(std::unordered_map<std::string, Value>& frame) {
  frame["raise_exception"] = Value::callable("raise_exception", [](CallArgs& args) -> Value {
    Bound b = bind(args, "raise_exception", {"message"});
    throw Failure("the template raised an exception: " + (b[0] ? to_str(*b[0]) : std::string()));
  });
  frame["strftime_now"] = Value::callable("strftime_now", [](CallArgs& args) -> Value {
    Bound b = bind(args, "strftime_now", {"format"});
    if (!b[0]) throw Failure("strftime_now() needs a format");
    const std::string& format = need_string(*b[0], "strftime_now");
    const std::time_t now = std::time(nullptr);
    std::tm local{};
    localtime_r(&now, &local);
    std::string buf(256 + format.size() * 8, '\0');
    const std::size_t n = std::strftime(buf.data(), buf.size(), format.c_str(), &local);
    if (n == 0 && !format.empty()) throw Failure("strftime_now(): format gives no text");
    buf.resize(n);
    return Json(buf);
  });
  frame["namespace"] = Value::callable("namespace", [](CallArgs& args) -> Value {
    Json object = Json::object();
    for (const Value& p : args.positional) {
      if (!p.is_data() || !p.data().is_object())
        throw Failure("namespace() takes a dict or key=value");
      for (auto it = p.data().begin(); it != p.data().end(); ++it) object[it.key()] = it.value();
    }
    for (auto& [k, v] : args.keyword) object[k] = v.to_json("namespace()");
    return Value::make_namespace(std::move(object));
  });
  frame["dict"] = Value::callable("dict", [](CallArgs& args) -> Value {
    if (!args.positional.empty()) throw Failure("dict() takes only key=value arguments");
    Json object = Json::object();
    for (auto& [k, v] : args.keyword) object[k] = v.to_json("dict()");
    return object;
  });
  frame["range"] = Value::callable("range", [](CallArgs& args) -> Value {
    if (!args.keyword.empty() || args.positional.empty() || args.positional.size() > 3) {
      throw Failure("range() takes 1 to 3 integers");
    }
    std::vector<int64_t> a;
    for (const Value& p : args.positional) a.push_back(need_int(p, "range"));
    const int64_t start = a.size() == 1 ? 0 : a[0];
    const int64_t stop = a.size() == 1 ? a[0] : a[1];
    const int64_t step = a.size() == 3 ? a[2] : 1;
    if (step == 0) throw Failure("range() step must not be zero");
    if ((stop - start) / step > 100000) throw Failure("range() of more than 100000 items");
    Json out = Json::array();
    for (int64_t i = start; step > 0 ? i < stop : i > stop; i += step) out.push_back(i);
    return out;
  });
}

}  // namespace thinkeys::jinja
