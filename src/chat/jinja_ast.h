#pragma once
// The parsed template: a tree of statements holding expression trees.
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "chat/jinja_value.h"

namespace thinkeys::jinja {

struct Expr;
using ExprPtr = std::unique_ptr<Expr>;

struct Expr {
  enum class Kind {
    Literal,    // value
    Name,       // name
    List,       // items
    Tuple,      // items (evaluates to a list)
    Dict,       // items as key, value, key, value...
    Attribute,  // items[0].name
    Index,      // items[0][items[1]]
    Slice,      // items[0][items[1]:items[2]:items[3]] (null = omitted)
    Call,       // items[0](items[1..], keywords)
    Filter,     // items[0] | name(items[1..], keywords)
    Test,       // items[0] is [not] name(items[1..])
    Not,        // not items[0]
    Negate,     // -items[0]
    Binary,     // items[0] name items[1]; name is the operator or "and"/"or"/"in"/"not in"
    Condition,  // items[0] if items[1] else items[2] (items[2] may be null)
  };
  Kind kind;
  int line;
  std::string name;
  Json value;
  bool negated = false;  // Test: `is not`
  std::vector<ExprPtr> items;
  std::vector<std::pair<std::string, ExprPtr>> keywords;
};

struct Stmt;
using Body = std::vector<std::unique_ptr<Stmt>>;

struct Stmt {
  enum class Kind {
    Text,      // text
    Output,    // {{ expr }}
    If,        // branches: (condition, body)...; condition null for else
    For,       // targets in expr [if filter] body [else else_body]
    Set,       // targets (or ns.attr in attribute) = expr
    SetBlock,  // {% set x %}body{% endset %}
    Macro,     // name(params with defaults) body
    Break,
    Continue,
    FilterBlock,  // {% filter name(args) %}body{% endfilter %}; expr is the filter call on a hole
    Generation,   // HF's {% generation %}body{% endgeneration %}: renders body as is
  };
  Kind kind;
  int line;
  std::string text;
  ExprPtr expr;
  ExprPtr filter;  // For: the `if` after the iterable
  std::vector<std::string> targets;
  std::string attribute;  // Set: ns.attribute
  std::vector<std::pair<ExprPtr, Body>> branches;
  Body body;
  Body else_body;
  std::vector<std::pair<std::string, ExprPtr>> params;  // Macro
};

}  // namespace thinkeys::jinja
