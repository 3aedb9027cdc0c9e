#include "chat/jinja_template.h"

#include <cmath>
#include <unordered_map>
#include <vector>

#include "chat/jinja_ast.h"
#include "chat/jinja_builtins.h"
#include "chat/jinja_failure.h"
#include "chat/jinja_lexer.h"
#include "chat/jinja_parser.h"
#include "util/error.h"

namespace thinkeys::jinja {

struct Template::Tree {
  Body body;
};

namespace {

enum class Flow { Normal, Break, Continue };

using Frame = std::unordered_map<std::string, Value>;

constexpr int kMaxMacroDepth = 64;

[[noreturn]] void fail_at(int line, const std::string& what) {
  throw Error("chat template line " + std::to_string(line) + ": " + what);
}

bool is_int(const Value& v) {
  return v.is_data() && (v.data().is_number_integer() || v.data().is_boolean());
}
bool is_num(const Value& v) {
  return v.is_data() && (v.data().is_number() || v.data().is_boolean());
}
int64_t as_int(const Value& v) {
  return v.data().is_boolean() ? (v.data().get<bool>() ? 1 : 0) : v.data().get<int64_t>();
}
double as_float(const Value& v) {
  return v.data().is_boolean() ? (v.data().get<bool>() ? 1.0 : 0.0) : v.data().get<double>();
}

[[noreturn]] void undefined_use(const Value& v) {
  throw Failure("'" + v.name() + "' is undefined");
}

// Python's index normalisation for slices.
struct SliceRange {
  int64_t start, stop, step;
};
SliceRange slice_range(int64_t size, const Value* start, const Value* stop, const Value* step) {
  SliceRange r{};
  r.step = step ? as_int(*step) : 1;
  if (r.step == 0) throw Failure("slice step cannot be zero");
  auto clamp = [&](const Value* v, int64_t if_missing) -> int64_t {
    if (!v) return if_missing;
    int64_t i = as_int(*v);
    if (i < 0) i += size;
    if (r.step > 0) return std::clamp<int64_t>(i, 0, size);
    return std::clamp<int64_t>(i, -1, size - 1);
  };
  r.start = clamp(start, r.step > 0 ? 0 : size - 1);
  r.stop = clamp(stop, r.step > 0 ? size : -1);
  return r;
}

class Evaluator {
 public:
  explicit Evaluator(const Json& variables) {
    Frame globals;
    add_globals(globals);
    if (!variables.is_object()) throw Error("template variables must be a JSON object");
    for (auto it = variables.begin(); it != variables.end(); ++it) globals[it.key()] = it.value();
    scopes_.push_back(std::move(globals));
    scopes_.emplace_back();
  }

  Flow exec(const Body& body, std::string& out) {
    for (const auto& s : body) {
      const Flow f = exec(*s, out);
      if (f != Flow::Normal) return f;
    }
    return Flow::Normal;
  }

 private:
  Flow exec(const Stmt& s, std::string& out) {
    try {
      return exec_unchecked(s, out);
    } catch (const Failure& f) {
      fail_at(s.line, f.what());
    }
  }

  Flow exec_unchecked(const Stmt& s, std::string& out) {
    switch (s.kind) {
      case Stmt::Kind::Text:
        out += s.text;
        return Flow::Normal;
      case Stmt::Kind::Output:
        out += to_str(eval(*s.expr));
        return Flow::Normal;
      case Stmt::Kind::If:
        for (const auto& [cond, body] : s.branches) {
          if (!cond || truthy(eval(*cond))) return exec(body, out);
        }
        return Flow::Normal;
      case Stmt::Kind::For:
        return exec_for(s, out);
      case Stmt::Kind::Set:
        assign(s, eval(*s.expr));
        return Flow::Normal;
      case Stmt::Kind::SetBlock: {
        std::string text;
        const Flow f = exec(s.body, text);
        if (f != Flow::Normal) throw Failure("break/continue inside {% set %} ... {% endset %}");
        scopes_.back()[s.targets[0]] = Json(text);
        return Flow::Normal;
      }
      case Stmt::Kind::Macro:
        scopes_.back()[s.text] = make_macro(s);
        return Flow::Normal;
      case Stmt::Kind::Break:
        return Flow::Break;
      case Stmt::Kind::Continue:
        return Flow::Continue;
      case Stmt::Kind::FilterBlock: {
        std::string text;
        const Flow f = exec(s.body, text);
        scopes_.emplace_back();
        scopes_.back()[" body"] = Json(text);
        const Value v = eval(*s.expr);
        scopes_.pop_back();
        out += to_str(v);
        return f;
      }
      case Stmt::Kind::Generation:
        return exec(s.body, out);
    }
    return Flow::Normal;
  }

  static Json iterable(const Value& v) {
    if (auto items = python_items(v)) return *std::move(items);
    throw Failure("cannot loop over a " + type_name(v));
  }

  void bind_targets(const std::vector<std::string>& targets, const Json& item) {
    if (targets.size() == 1) {
      scopes_.back()[targets[0]] = item;
      return;
    }
    if (!item.is_array() || item.size() != targets.size()) {
      throw Failure("cannot unpack " + python_repr(item) + " into " +
                    std::to_string(targets.size()) + " variables");
    }
    for (std::size_t i = 0; i < targets.size(); ++i) scopes_.back()[targets[i]] = item[i];
  }

  Flow exec_for(const Stmt& s, std::string& out) {
    Json items = iterable(eval(*s.expr));
    if (s.filter) {
      Json kept = Json::array();
      for (const Json& item : items) {
        scopes_.emplace_back();
        bind_targets(s.targets, item);
        const bool keep = truthy(eval(*s.filter));
        scopes_.pop_back();
        if (keep) kept.push_back(item);
      }
      items = std::move(kept);
    }
    if (items.empty()) return exec(s.else_body, out);
    const auto n = static_cast<int64_t>(items.size());
    for (int64_t i = 0; i < n; ++i) {
      scopes_.emplace_back();
      bind_targets(s.targets, items[static_cast<std::size_t>(i)]);
      Json loop = {
          {"index", i + 1},  {"index0", i},        {"revindex", n - i}, {"revindex0", n - i - 1},
          {"first", i == 0}, {"last", i == n - 1}, {"length", n},       {"depth", 1},
          {"depth0", 0}};
      if (i > 0) loop["previtem"] = items[static_cast<std::size_t>(i - 1)];
      if (i + 1 < n) loop["nextitem"] = items[static_cast<std::size_t>(i + 1)];
      scopes_.back()["loop"] = std::move(loop);
      const Flow f = exec(s.body, out);
      scopes_.pop_back();
      if (f == Flow::Break) break;
    }
    return Flow::Normal;
  }

  void assign(const Stmt& s, const Value& v) {
    if (!s.attribute.empty()) {
      const Value ns = lookup(s.targets[0]);
      if (!ns.is_namespace()) {
        throw Failure("cannot set attribute '" + s.attribute + "' of " + type_name(ns) + " '" +
                      s.targets[0] + "' (only namespace() objects can be changed)");
      }
      ns.namespace_object()[s.attribute] = v.to_json("assignment");
      return;
    }
    if (s.targets.size() == 1) {
      scopes_.back()[s.targets[0]] = v;
      return;
    }
    if (!v.is_data()) throw Failure("cannot unpack a " + type_name(v));
    bind_targets(s.targets, v.data());
  }

  Value make_macro(const Stmt& s) {
    const Stmt* def = &s;
    return Value::callable(s.text, [this, def](CallArgs& args) -> Value {
      if (depth_ >= kMaxMacroDepth) throw Failure("macros nested more than 64 deep");
      if (args.positional.size() > def->params.size()) {
        throw Failure("macro '" + def->text + "' takes " + std::to_string(def->params.size()) +
                      " arguments, got " + std::to_string(args.positional.size()));
      }
      // A macro sees the globals and the template's top level, not its caller.
      std::vector<Frame> saved = std::move(scopes_);
      scopes_ = {saved[0], saved[1], Frame{}};
      Frame& params = scopes_.back();
      for (std::size_t i = 0; i < args.positional.size(); ++i)
        params[def->params[i].first] = args.positional[i];
      for (auto& [k, v] : args.keyword) {
        bool found = false;
        for (const auto& p : def->params) found |= p.first == k;
        if (!found) {
          scopes_ = std::move(saved);
          throw Failure("macro '" + def->text + "' has no parameter '" + k + "'");
        }
        params[k] = v;
      }
      std::string text;
      ++depth_;
      try {
        for (const auto& [name, fallback] : def->params) {
          if (!scopes_.back().count(name)) {
            scopes_.back()[name] = fallback ? eval(*fallback) : Value::undefined(name);
          }
        }
        exec(def->body, text);
      } catch (...) {
        --depth_;
        scopes_ = std::move(saved);
        throw;
      }
      --depth_;
      scopes_ = std::move(saved);
      return Json(text);
    });
  }

  Value lookup(const std::string& name) const {
    for (auto it = scopes_.rbegin(); it != scopes_.rend(); ++it) {
      auto found = it->find(name);
      if (found != it->end()) return found->second;
    }
    return Value::undefined(name);
  }

  Value eval(const Expr& e) {
    try {
      return eval_unchecked(e);
    } catch (const Failure& f) {
      fail_at(e.line, f.what());
    }
  }

  Value eval_unchecked(const Expr& e) {
    switch (e.kind) {
      case Expr::Kind::Literal:
        return e.value;
      case Expr::Kind::Name:
        return lookup(e.name);
      case Expr::Kind::List:
      case Expr::Kind::Tuple: {
        Json list = Json::array();
        for (const auto& item : e.items) list.push_back(eval(*item).to_json("a list item"));
        return list;
      }
      case Expr::Kind::Dict: {
        Json dict = Json::object();
        for (std::size_t i = 0; i + 1 < e.items.size(); i += 2) {
          const Value k = eval(*e.items[i]);
          if (!k.is_string()) throw Failure("dict keys must be strings, got " + type_name(k));
          dict[k.data().get<std::string>()] = eval(*e.items[i + 1]).to_json("a dict value");
        }
        return dict;
      }
      case Expr::Kind::Attribute:
        return attribute(eval(*e.items[0]), e.name);
      case Expr::Kind::Index:
        return index(eval(*e.items[0]), eval(*e.items[1]));
      case Expr::Kind::Slice:
        return slice(e);
      case Expr::Kind::Call: {
        const Value callee = eval(*e.items[0]);
        CallArgs args = arguments(e, 1);
        if (callee.is_undefined())
          throw Failure("'" + callee.name() + "' is undefined (called as a function)");
        if (!callee.is_callable()) throw Failure("a " + type_name(callee) + " is not callable");
        return callee.function()(args);
      }
      case Expr::Kind::Filter: {
        const Value input = eval(*e.items[0]);
        CallArgs args = arguments(e, 1);
        return apply_filter(e.name, input, args);
      }
      case Expr::Kind::Test: {
        const Value input = eval(*e.items[0]);
        CallArgs args = arguments(e, 1);
        return Json(apply_test(e.name, input, args) != e.negated);
      }
      case Expr::Kind::Not:
        return Json(!truthy(eval(*e.items[0])));
      case Expr::Kind::Negate: {
        const Value v = eval(*e.items[0]);
        if (is_int(v)) return Json(-as_int(v));
        if (is_num(v)) return Json(-as_float(v));
        throw Failure("cannot negate a " + type_name(v));
      }
      case Expr::Kind::Binary:
        return binary(e);
      case Expr::Kind::Condition:
        if (truthy(eval(*e.items[1]))) return eval(*e.items[0]);
        return e.items[2] ? eval(*e.items[2]) : Value::undefined("else branch");
    }
    throw Failure("unknown expression");
  }

  CallArgs arguments(const Expr& e, std::size_t first) {
    CallArgs args;
    for (std::size_t i = first; i < e.items.size(); ++i)
      args.positional.push_back(eval(*e.items[i]));
    for (const auto& [k, v] : e.keywords) args.keyword.emplace_back(k, eval(*v));
    return args;
  }

  static Value attribute(const Value& obj, const std::string& name) {
    if (obj.is_undefined()) undefined_use(obj);
    if (obj.is_namespace()) {
      const Json& ns = obj.namespace_object();
      auto it = ns.find(name);
      return it == ns.end() ? Value::undefined(name) : Value(*it);
    }
    if (!obj.is_data()) return Value::undefined(name);
    const Json& j = obj.data();
    // Jinja looks for a Python attribute first, so dict methods win over keys.
    Value m = method(obj, name);
    if (!m.is_undefined()) return m;
    if (j.is_object()) {
      auto it = j.find(name);
      if (it != j.end()) return *it;
    }
    return Value::undefined(name);
  }

  static Value index(const Value& obj, const Value& key) {
    if (obj.is_undefined()) undefined_use(obj);
    if (obj.is_namespace() || (obj.is_data() && obj.data().is_object())) {
      if (!key.is_string()) return Value::undefined(to_str(key));
      const std::string& k = key.data().get_ref<const std::string&>();
      const Json& d = obj.is_namespace() ? obj.namespace_object() : obj.data();
      auto it = d.find(k);
      if (it != d.end()) return *it;
      return obj.is_namespace() ? Value::undefined(k) : method(obj, k);
    }
    if (!obj.is_data()) return Value::undefined(to_str(key));
    const Json& j = obj.data();
    if (key.is_string()) return method(obj, key.data().get<std::string>());
    if (!is_int(key)) return Value::undefined(to_str(key));
    int64_t i = as_int(key);
    if (j.is_array()) {
      const auto n = static_cast<int64_t>(j.size());
      if (i < 0) i += n;
      if (i < 0 || i >= n) return Value::undefined("index " + std::to_string(as_int(key)));
      return j[static_cast<std::size_t>(i)];
    }
    if (j.is_string()) {
      const std::u32string cps = to_code_points(j.get<std::string>());
      const auto n = static_cast<int64_t>(cps.size());
      if (i < 0) i += n;
      if (i < 0 || i >= n) return Value::undefined("index " + std::to_string(as_int(key)));
      return Json(
          from_code_points(std::u32string_view(cps).substr(static_cast<std::size_t>(i), 1)));
    }
    return Value::undefined(to_str(key));
  }

  Value slice(const Expr& e) {
    const Value obj = eval(*e.items[0]);
    Value parts[3];
    const Value* ptr[3] = {nullptr, nullptr, nullptr};
    for (int k = 0; k < 3; ++k) {
      if (!e.items[static_cast<std::size_t>(k) + 1]) continue;
      parts[k] = eval(*e.items[static_cast<std::size_t>(k) + 1]);
      if (parts[k].is_none()) continue;
      if (!is_int(parts[k])) throw Failure("slice indices must be integers");
      ptr[k] = &parts[k];
    }
    if (obj.is_undefined()) undefined_use(obj);
    if (obj.is_string()) {
      const std::u32string cps = to_code_points(obj.data().get<std::string>());
      const SliceRange r = slice_range(static_cast<int64_t>(cps.size()), ptr[0], ptr[1], ptr[2]);
      std::u32string out;
      for (int64_t i = r.start; r.step > 0 ? i < r.stop : i > r.stop; i += r.step) {
        out += cps[static_cast<std::size_t>(i)];
      }
      return Json(from_code_points(out));
    }
    if (obj.is_data() && obj.data().is_array()) {
      const Json& j = obj.data();
      const SliceRange r = slice_range(static_cast<int64_t>(j.size()), ptr[0], ptr[1], ptr[2]);
      Json out = Json::array();
      for (int64_t i = r.start; r.step > 0 ? i < r.stop : i > r.stop; i += r.step) {
        out.push_back(j[static_cast<std::size_t>(i)]);
      }
      return out;
    }
    throw Failure("cannot slice a " + type_name(obj));
  }

  Value binary(const Expr& e) {
    const std::string& op = e.name;
    if (op == "and") {
      Value a = eval(*e.items[0]);
      return truthy(a) ? eval(*e.items[1]) : a;
    }
    if (op == "or") {
      Value a = eval(*e.items[0]);
      return truthy(a) ? a : eval(*e.items[1]);
    }
    const Value a = eval(*e.items[0]);
    const Value b = eval(*e.items[1]);
    if (op == "~") return Json(to_str(a) + to_str(b));
    if (op == "==") return Json(equal(a, b));
    if (op == "!=") return Json(!equal(a, b));
    if (op == "<" || op == ">" || op == "<=" || op == ">=") {
      const auto lt = less(a, b), gt = less(b, a);
      if (!lt || !gt) {
        throw Failure("'" + op + "' is not supported between a " + type_name(a) + " and a " +
                      type_name(b));
      }
      if (op == "<") return Json(*lt);
      if (op == ">") return Json(*gt);
      if (op == "<=") return Json(!*gt);
      return Json(!*lt);
    }
    if (op == "in" || op == "not in") return Json(contains(b, a) == (op == "in"));
    if (a.is_undefined()) undefined_use(a);
    if (b.is_undefined()) undefined_use(b);
    return arithmetic(op, a, b);
  }

  static bool contains(const Value& container, const Value& item) {
    if (container.is_undefined()) return false;
    if (container.is_string()) {
      if (!item.is_string())
        throw Failure("'in <string>' needs a string on the left, got " + type_name(item));
      return container.data().get_ref<const std::string&>().find(
                 item.data().get_ref<const std::string&>()) != std::string::npos;
    }
    if (container.is_namespace() || (container.is_data() && container.data().is_object())) {
      const Json& d = container.is_namespace() ? container.namespace_object() : container.data();
      return item.is_string() && d.contains(item.data().get<std::string>());
    }
    if (container.is_data() && container.data().is_array()) {
      for (const Json& x : container.data()) {
        if (equal(Value(x), item)) return true;
      }
      return false;
    }
    throw Failure("'in' needs a string, list or dict on the right, got " + type_name(container));
  }

  static Value arithmetic(const std::string& op, const Value& a, const Value& b) {
    if (is_num(a) && is_num(b)) {
      const bool ints = is_int(a) && is_int(b);
      if (op == "+") return ints ? Json(as_int(a) + as_int(b)) : Json(as_float(a) + as_float(b));
      if (op == "-") return ints ? Json(as_int(a) - as_int(b)) : Json(as_float(a) - as_float(b));
      if (op == "*") return ints ? Json(as_int(a) * as_int(b)) : Json(as_float(a) * as_float(b));
      if (op == "/") {
        if (as_float(b) == 0) throw Failure("division by zero");
        return Json(as_float(a) / as_float(b));
      }
      if (op == "//" || op == "%") {
        if (as_float(b) == 0) throw Failure("division by zero");
        if (ints) {
          const int64_t x = as_int(a), y = as_int(b);
          int64_t q = x / y;
          if ((x % y != 0) && ((x < 0) != (y < 0))) --q;  // floor, as Python
          return op == "//" ? Json(q) : Json(x - q * y);
        }
        const double q = std::floor(as_float(a) / as_float(b));
        return op == "//" ? Json(q) : Json(as_float(a) - q * as_float(b));
      }
      if (op == "**") {
        if (ints && as_int(b) >= 0) {
          int64_t r = 1;
          for (int64_t i = 0; i < as_int(b); ++i) r *= as_int(a);
          return Json(r);
        }
        return Json(std::pow(as_float(a), as_float(b)));
      }
    }
    if (op == "+" && a.is_string() && b.is_string()) {
      return Json(a.data().get<std::string>() + b.data().get<std::string>());
    }
    if (op == "+" && a.is_data() && b.is_data() && a.data().is_array() && b.data().is_array()) {
      Json out = a.data();
      for (const Json& x : b.data()) out.push_back(x);
      return out;
    }
    if (op == "*" && (a.is_string() || (a.is_data() && a.data().is_array())) && is_int(b)) {
      const int64_t n = as_int(b);
      if (n > 100000) throw Failure("repetition count too large");
      if (a.is_string()) {
        std::string out;
        for (int64_t i = 0; i < n; ++i) out += a.data().get<std::string>();
        return Json(out);
      }
      Json out = Json::array();
      for (int64_t i = 0; i < n; ++i) {
        for (const Json& x : a.data()) out.push_back(x);
      }
      return out;
    }
    throw Failure("'" + op + "' is not supported between a " + type_name(a) + " and a " +
                  type_name(b) + (op == "+" ? " (use ~ to join text to other values)" : ""));
  }

  std::vector<Frame> scopes_;
  int depth_ = 0;
};

}  // namespace

Template::Template(std::string_view source)
    : tree_(std::make_unique<Tree>(Tree{parse(lex(source))})) {}
Template::~Template() = default;
Template::Template(Template&&) noexcept = default;
Template& Template::operator=(Template&&) noexcept = default;

std::string Template::render(const Json& variables) const {
  Evaluator ev(variables);
  std::string out;
  ev.exec(tree_->body, out);
  return out;
}

}  // namespace thinkeys::jinja
