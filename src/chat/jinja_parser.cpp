#include "chat/jinja_parser.h"

#include <algorithm>
#include <initializer_list>
#include <string>
#include <string_view>

#include "util/error.h"

namespace thinkeys::jinja {
namespace {

[[noreturn]] void fail(int line, const std::string& what) {
  throw Error("chat template line " + std::to_string(line) + ": " + what);
}

// Integer literals, also after a dot (`messages.0`), beyond int64 are refused.
long long integer_literal(const std::string& text, int line) {
  try {
    return std::stoll(text);
  } catch (const std::exception&) {
    fail(line, "integer literal " + text + " is out of range");
  }
}

bool is_name(const Token& t, std::string_view name) {
  return t.kind == Token::Kind::Name && t.text == name;
}

ExprPtr node(Expr::Kind kind, int line) {
  auto e = std::make_unique<Expr>();
  e->kind = kind;
  e->line = line;
  return e;
}

// Parses the tokens of one tag.
class ExprParser {
 public:
  ExprParser(const std::vector<Token>& tokens, int line) : t_(tokens), line_(line) {}

  bool done() const { return i_ >= t_.size(); }
  const Token* peek(std::size_t ahead = 0) const {
    return i_ + ahead < t_.size() ? &t_[i_ + ahead] : nullptr;
  }
  int line() const { return done() ? (t_.empty() ? line_ : t_.back().line) : t_[i_].line; }

  bool at_op(std::string_view op, std::size_t ahead = 0) const {
    const Token* t = peek(ahead);
    return t && t->kind == Token::Kind::Operator && t->text == op;
  }
  bool at_name(std::string_view name, std::size_t ahead = 0) const {
    const Token* t = peek(ahead);
    return t && is_name(*t, name);
  }
  bool accept_op(std::string_view op) {
    if (!at_op(op)) return false;
    ++i_;
    return true;
  }
  bool accept_name(std::string_view name) {
    if (!at_name(name)) return false;
    ++i_;
    return true;
  }
  void expect_op(std::string_view op) {
    if (!accept_op(op)) fail(line(), "expected '" + std::string(op) + "' " + found());
  }
  std::string expect_identifier(const char* what) {
    const Token* t = peek();
    if (!t || t->kind != Token::Kind::Name)
      fail(line(), std::string("expected ") + what + " " + found());
    ++i_;
    return t->text;
  }
  // Items separated by commas (a trailing one allowed) up to `close`, each
  // read by `item`, then `close` itself.
  template <typename Item>
  void comma_list(std::string_view close, Item item) {
    while (!at_op(close)) {
      item();
      if (!accept_op(",")) break;
    }
    expect_op(close);
  }
  void expect_end(const char* construct) {
    if (!done()) fail(line(), "unexpected '" + t_[i_].text + "' in " + construct);
  }
  std::string found() const {
    if (done()) return "at the end of the tag";
    return "before '" + t_[i_].text + "'";
  }

  // A full expression; with_condition=false for a for loop's iterable, whose
  // `if` filters the loop instead.
  ExprPtr expression(bool with_condition = true) {
    if (!with_condition) return or_expr();
    ExprPtr e = or_expr();
    if (at_name("if")) {
      const int l = line();
      ++i_;
      auto c = node(Expr::Kind::Condition, l);
      c->items.push_back(std::move(e));
      c->items.push_back(or_expr());
      c->items.push_back(accept_name("else") ? expression() : nullptr);
      return c;
    }
    return e;
  }

  // `a, b` without brackets (set targets' values, for loops over tuples).
  ExprPtr tuple_or_expression() {
    const int l = line();
    ExprPtr first = expression();
    if (!at_op(",")) return first;
    auto t = node(Expr::Kind::Tuple, l);
    t->items.push_back(std::move(first));
    while (accept_op(",")) {
      if (done()) break;
      t->items.push_back(expression());
    }
    return t;
  }

 private:
  ExprPtr binary(const std::string& op, ExprPtr lhs, ExprPtr rhs, int l) {
    auto b = node(Expr::Kind::Binary, l);
    b->name = op;
    b->items.push_back(std::move(lhs));
    b->items.push_back(std::move(rhs));
    return b;
  }

  // One left-associative precedence level: operands from `next`, joined while
  // the next token is one of `ops` (keywords for or/and, operators otherwise).
  template <typename Next>
  ExprPtr left_assoc(std::initializer_list<std::string_view> ops, bool keywords, Next next) {
    ExprPtr e = next();
    while (true) {
      const auto op = std::find_if(ops.begin(), ops.end(), [&](std::string_view o) {
        return keywords ? at_name(o) : at_op(o);
      });
      if (op == ops.end()) return e;
      const int l = line();
      ++i_;
      e = binary(std::string(*op), std::move(e), next(), l);
    }
  }

  ExprPtr or_expr() {
    return left_assoc({"or"}, true, [this] { return and_expr(); });
  }
  ExprPtr and_expr() {
    return left_assoc({"and"}, true, [this] { return not_expr(); });
  }
  ExprPtr not_expr() {
    if (at_name("not")) {
      const int l = line();
      ++i_;
      auto n = node(Expr::Kind::Not, l);
      n->items.push_back(not_expr());
      return n;
    }
    return compare();
  }
  ExprPtr compare() {
    ExprPtr e = additive();
    bool seen = false;
    while (true) {
      const int l = line();
      std::string op;
      for (const char* o : {"==", "!=", "<", ">", "<=", ">="}) {
        if (at_op(o)) op = o;
      }
      if (!op.empty()) {
        ++i_;
      } else if (at_name("in")) {
        ++i_;
        op = "in";
      } else if (at_name("not") && at_name("in", 1)) {
        i_ += 2;
        op = "not in";
      } else {
        return e;
      }
      if (seen) fail(l, "chained comparisons (a < b < c) are not supported");
      seen = true;
      e = binary(op, std::move(e), additive(), l);
    }
  }
  ExprPtr additive() {
    return left_assoc({"+", "-"}, false, [this] { return concat(); });
  }
  ExprPtr concat() {
    return left_assoc({"~"}, false, [this] { return multiplicative(); });
  }
  ExprPtr multiplicative() {
    return left_assoc({"*", "/", "//", "%"}, false, [this] { return power(); });
  }
  ExprPtr power() {
    return left_assoc({"**"}, false, [this] { return unary(true); });
  }
  ExprPtr unary(bool with_filters) {
    ExprPtr e;
    const int l = line();
    if (accept_op("-")) {
      e = node(Expr::Kind::Negate, l);
      e->items.push_back(unary(false));
    } else if (accept_op("+")) {
      e = unary(false);
    } else {
      e = primary();
    }
    e = postfix(std::move(e));
    if (with_filters) e = filters_and_tests(std::move(e));
    return e;
  }

  ExprPtr primary() {
    const Token* t = peek();
    if (!t) fail(line(), "expected an expression at the end of the tag");
    const int l = t->line;
    ++i_;
    switch (t->kind) {
      case Token::Kind::String: {
        auto e = node(Expr::Kind::Literal, l);
        std::string s = t->text;
        // Adjacent string literals concatenate, as in Python.
        while (peek() && peek()->kind == Token::Kind::String) s += t_[i_++].text;
        e->value = s;
        return e;
      }
      case Token::Kind::Integer: {
        auto e = node(Expr::Kind::Literal, l);
        e->value = integer_literal(t->text, l);
        return e;
      }
      case Token::Kind::Float: {
        auto e = node(Expr::Kind::Literal, l);
        try {
          e->value = std::stod(t->text);
        } catch (const std::exception&) {
          fail(l, "float literal " + t->text + " is out of range");
        }
        return e;
      }
      case Token::Kind::Name: {
        auto e = node(Expr::Kind::Literal, l);
        if (t->text == "true" || t->text == "True") {
          e->value = true;
        } else if (t->text == "false" || t->text == "False") {
          e->value = false;
        } else if (t->text == "none" || t->text == "None") {
          e->value = nullptr;
        } else {
          e->kind = Expr::Kind::Name;
          e->name = t->text;
        }
        return e;
      }
      case Token::Kind::Operator:
        break;
    }
    if (t->text == "(") {
      if (accept_op(")")) return node(Expr::Kind::Tuple, l);
      ExprPtr first = expression();
      if (accept_op(")")) return first;
      auto tuple = node(Expr::Kind::Tuple, l);
      tuple->items.push_back(std::move(first));
      while (accept_op(",")) {
        if (at_op(")")) break;
        tuple->items.push_back(expression());
      }
      expect_op(")");
      return tuple;
    }
    if (t->text == "[") {
      auto list = node(Expr::Kind::List, l);
      comma_list("]", [&] { list->items.push_back(expression()); });
      return list;
    }
    if (t->text == "{") {
      auto dict = node(Expr::Kind::Dict, l);
      comma_list("}", [&] {
        dict->items.push_back(expression());
        expect_op(":");
        dict->items.push_back(expression());
      });
      return dict;
    }
    fail(l, "unexpected '" + t->text + "' where an expression should start");
  }

  ExprPtr postfix(ExprPtr e) {
    while (true) {
      const int l = line();
      if (accept_op(".")) {
        const Token* t = peek();
        if (t && t->kind == Token::Kind::Integer) {
          ++i_;
          auto idx = node(Expr::Kind::Index, l);
          idx->items.push_back(std::move(e));
          auto lit = node(Expr::Kind::Literal, l);
          lit->value = integer_literal(t->text, l);
          idx->items.push_back(std::move(lit));
          e = std::move(idx);
          continue;
        }
        auto a = node(Expr::Kind::Attribute, l);
        a->name = expect_identifier("an attribute name after '.'");
        a->items.push_back(std::move(e));
        e = std::move(a);
      } else if (accept_op("[")) {
        e = subscript(std::move(e), l);
      } else if (at_op("(")) {
        e = call(std::move(e), l);
      } else {
        return e;
      }
    }
  }

  ExprPtr subscript(ExprPtr target, int l) {
    ExprPtr parts[3];
    bool slice = false;
    for (int k = 0; k < 3; ++k) {
      if (!at_op(":") && !at_op("]")) parts[k] = expression();
      if (k < 2 && accept_op(":")) {
        slice = true;
        continue;
      }
      break;
    }
    expect_op("]");
    if (!slice) {
      if (!parts[0]) fail(l, "empty subscript []");
      auto idx = node(Expr::Kind::Index, l);
      idx->items.push_back(std::move(target));
      idx->items.push_back(std::move(parts[0]));
      return idx;
    }
    auto s = node(Expr::Kind::Slice, l);
    s->items.push_back(std::move(target));
    for (auto& p : parts) s->items.push_back(std::move(p));
    return s;
  }

  void arguments(Expr& e) {
    expect_op("(");
    comma_list(")", [&] {
      if (peek() && peek()->kind == Token::Kind::Name && at_op("=", 1)) {
        std::string key = peek()->text;
        i_ += 2;
        e.keywords.emplace_back(std::move(key), expression());
      } else {
        if (at_op("*") || at_op("**"))
          fail(line(), "*args and **kwargs in calls are not supported");
        if (!e.keywords.empty()) fail(line(), "positional argument after a keyword argument");
        e.items.push_back(expression());
      }
    });
  }

  ExprPtr call(ExprPtr callee, int l) {
    auto c = node(Expr::Kind::Call, l);
    c->items.push_back(std::move(callee));
    arguments(*c);
    return c;
  }

  ExprPtr filters_and_tests(ExprPtr e) {
    while (true) {
      const int l = line();
      if (accept_op("|")) {
        auto f = node(Expr::Kind::Filter, l);
        f->name = expect_identifier("a filter name after '|'");
        while (accept_op(".")) f->name += "." + expect_identifier("a filter name");
        f->items.push_back(std::move(e));
        if (at_op("(")) arguments(*f);
        e = std::move(f);
      } else if (accept_name("is")) {
        auto t = node(Expr::Kind::Test, l);
        t->negated = accept_name("not");
        t->name = expect_identifier("a test name after 'is'");
        t->items.push_back(std::move(e));
        if (at_op("(")) {
          arguments(*t);
        } else if (const Token* a = peek();
                   a && a->kind != Token::Kind::Operator &&
                   !(a->kind == Token::Kind::Name &&
                     (a->text == "else" || a->text == "or" || a->text == "and" || a->text == "if" ||
                      a->text == "in" || a->text == "is" || a->text == "not"))) {
          // `x is divisibleby 3`: one argument without parentheses.
          t->items.push_back(postfix(primary()));
        }
        e = std::move(t);
      } else if (at_op("(")) {
        e = call(std::move(e), l);
      } else {
        return e;
      }
    }
  }

  const std::vector<Token>& t_;
  int line_;
  std::size_t i_ = 0;
};

// Walks the pieces, building nested bodies.
class Parser {
 public:
  explicit Parser(std::vector<Piece> pieces) : pieces_(std::move(pieces)) {}

  Body run() {
    Body body = parse_body({});
    return body;
  }

 private:
  // Parses until a statement whose first word is in `ends`; leaves the cursor
  // on that statement. With `ends` empty, parses to the end of the template.
  Body parse_body(std::initializer_list<std::string_view> ends) {
    Body body;
    while (pos_ < pieces_.size()) {
      const Piece& p = pieces_[pos_];
      if (p.kind == Piece::Kind::Text) {
        auto s = stmt(Stmt::Kind::Text, p.line);
        s->text = p.text;
        body.push_back(std::move(s));
        ++pos_;
        continue;
      }
      if (p.kind == Piece::Kind::Output) {
        ExprParser ex(p.tokens, p.line);
        if (ex.done()) fail(p.line, "empty {{ }}");
        auto s = stmt(Stmt::Kind::Output, p.line);
        s->expr = ex.tuple_or_expression();
        ex.expect_end("{{ ... }}");
        body.push_back(std::move(s));
        ++pos_;
        continue;
      }
      if (p.tokens.empty() || p.tokens[0].kind != Token::Kind::Name) {
        fail(p.line, "a statement {% ... %} must start with a keyword");
      }
      const std::string& word = p.tokens[0].text;
      for (std::string_view end : ends) {
        if (word == end) return body;
      }
      body.push_back(statement(word, p));
    }
    if (ends.size() > 0) {
      fail(open_line_, "{% " + open_word_ + " %} is never closed (expected {% " +
                           std::string(*std::prev(ends.end())) + " %})");
    }
    return body;
  }

  // Runs parse_body for a block opened by `word` at `line`.
  Body block(const std::string& word, int line, std::initializer_list<std::string_view> ends) {
    const std::string saved_word = open_word_;
    const int saved_line = open_line_;
    open_word_ = word;
    open_line_ = line;
    Body b = parse_body(ends);
    open_word_ = saved_word;
    open_line_ = saved_line;
    return b;
  }

  const std::string& current_word() const { return pieces_[pos_].tokens[0].text; }

  // Checks that the closing tag has nothing after its keyword and moves past it.
  void close_tag() {
    const Piece& p = pieces_[pos_];
    if (p.tokens.size() > 1)
      fail(p.line, "unexpected '" + p.tokens[1].text + "' after " + p.tokens[0].text);
    ++pos_;
  }

  std::unique_ptr<Stmt> statement(const std::string& word, const Piece& p) {
    ExprParser ex(p.tokens, p.line);
    ex.accept_name(word);
    ++pos_;
    if (word == "if") {
      auto s = stmt(Stmt::Kind::If, p.line);
      ExprPtr cond = ex.expression();
      ex.expect_end("{% if %}");
      while (true) {
        Body b = block("if", p.line, {"elif", "else", "endif"});
        s->branches.emplace_back(std::move(cond), std::move(b));
        const Piece& end = pieces_[pos_];
        if (current_word() == "elif") {
          ExprParser e2(end.tokens, end.line);
          e2.accept_name("elif");
          ++pos_;
          cond = e2.expression();
          e2.expect_end("{% elif %}");
          continue;
        }
        if (current_word() == "else") {
          close_tag();
          Body eb = block("if", p.line, {"endif"});
          s->branches.emplace_back(nullptr, std::move(eb));
        }
        close_tag();
        return s;
      }
    }
    if (word == "for") {
      auto s = stmt(Stmt::Kind::For, p.line);
      do {
        s->targets.push_back(ex.expect_identifier("a loop variable after 'for'"));
      } while (ex.accept_op(","));
      if (!ex.accept_name("in")) fail(p.line, "expected 'in' in {% for %} " + ex.found());
      s->expr = ex.expression(false);
      if (ex.at_op(",")) fail(p.line, "looping over an unbracketed tuple is not supported");
      if (ex.accept_name("if")) s->filter = ex.expression(false);
      if (ex.at_name("recursive")) fail(p.line, "recursive loops are not supported");
      ex.expect_end("{% for %}");
      s->body = block("for", p.line, {"else", "endfor"});
      if (current_word() == "else") {
        close_tag();
        s->else_body = block("for", p.line, {"endfor"});
      }
      close_tag();
      return s;
    }
    if (word == "set") {
      std::string first = ex.expect_identifier("a variable name after 'set'");
      if (ex.accept_op(".")) {
        auto s = stmt(Stmt::Kind::Set, p.line);
        s->targets.push_back(first);
        s->attribute = ex.expect_identifier("an attribute name");
        ex.expect_op("=");
        s->expr = ex.tuple_or_expression();
        ex.expect_end("{% set %}");
        return s;
      }
      std::vector<std::string> targets{first};
      while (ex.accept_op(",")) targets.push_back(ex.expect_identifier("a variable name"));
      if (ex.accept_op("=")) {
        auto s = stmt(Stmt::Kind::Set, p.line);
        s->targets = std::move(targets);
        s->expr = ex.tuple_or_expression();
        ex.expect_end("{% set %}");
        return s;
      }
      if (targets.size() != 1) fail(p.line, "a {% set %} block assigns one variable");
      if (ex.at_op("|")) fail(p.line, "filters on {% set %} blocks are not supported");
      ex.expect_end("{% set %}");
      auto s = stmt(Stmt::Kind::SetBlock, p.line);
      s->targets = std::move(targets);
      s->body = block("set", p.line, {"endset"});
      close_tag();
      return s;
    }
    if (word == "macro") {
      auto s = stmt(Stmt::Kind::Macro, p.line);
      s->text = ex.expect_identifier("a macro name");
      ex.expect_op("(");
      ex.comma_list(")", [&] {
        std::string param = ex.expect_identifier("a parameter name");
        ExprPtr def = ex.accept_op("=") ? ex.expression() : nullptr;
        s->params.emplace_back(std::move(param), std::move(def));
      });
      ex.expect_end("{% macro %}");
      s->body = block("macro", p.line, {"endmacro"});
      close_tag();
      return s;
    }
    if (word == "break" || word == "continue") {
      ex.expect_end(word == "break" ? "{% break %}" : "{% continue %}");
      return stmt(word == "break" ? Stmt::Kind::Break : Stmt::Kind::Continue, p.line);
    }
    if (word == "filter") {
      // The filter applies to the body's text, which stands in as a name no
      // template can spell: " body" | name(args).
      std::vector<Token> toks{{Token::Kind::Name, " body", p.line},
                              {Token::Kind::Operator, "|", p.line}};
      toks.insert(toks.end(), p.tokens.begin() + 1, p.tokens.end());
      ExprParser fx(toks, p.line);
      auto s = stmt(Stmt::Kind::FilterBlock, p.line);
      s->expr = fx.expression();
      fx.expect_end("{% filter %}");
      if (s->expr->kind != Expr::Kind::Filter) fail(p.line, "malformed {% filter %}");
      s->body = block("filter", p.line, {"endfilter"});
      close_tag();
      return s;
    }
    if (word == "generation") {
      ex.expect_end("{% generation %}");
      auto s = stmt(Stmt::Kind::Generation, p.line);
      s->body = block("generation", p.line, {"endgeneration"});
      close_tag();
      return s;
    }
    for (const char* unsupported : {"include", "import", "from", "extends", "block", "call", "with",
                                    "do", "autoescape", "trans", "pluralize"}) {
      if (word == unsupported) fail(p.line, "{% " + word + " %} is not supported");
    }
    fail(p.line, "unknown statement {% " + word + " %}" +
                     (word.starts_with("end") || word == "else" || word == "elif"
                          ? " (no open block it could close)"
                          : ""));
  }

  static std::unique_ptr<Stmt> stmt(Stmt::Kind kind, int line) {
    auto s = std::make_unique<Stmt>();
    s->kind = kind;
    s->line = line;
    return s;
  }

  std::vector<Piece> pieces_;
  std::size_t pos_ = 0;
  std::string open_word_;
  int open_line_ = 0;
};

}  // namespace

Body parse(std::vector<Piece> pieces) { return Parser(std::move(pieces)).run(); }

}  // namespace thinkeys::jinja
