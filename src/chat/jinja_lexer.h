#pragma once
// Splits a Jinja template into text, {{ output }} and {% statement %} pieces,
// applying whitespace control as Hugging Face configures Jinja: `-` strips
// whitespace beside a tag, trim_blocks drops the newline after a statement or
// comment, lstrip_blocks drops spaces and tabs before one on its own line.
// Comments vanish; {% raw %} bodies become text.
#include <string>
#include <string_view>
#include <vector>

namespace thinkeys::jinja {

struct Token {
  enum class Kind { Name, String, Integer, Float, Operator };
  Kind kind;
  std::string text;  // names, operators; string literals unescaped
  int line;
};

struct Piece {
  enum class Kind { Text, Output, Statement };
  Kind kind;
  std::string text;           // Text
  std::vector<Token> tokens;  // Output and Statement
  int line;                   // where the piece starts
};

struct LexOptions {
  bool trim_blocks = true;
  bool lstrip_blocks = true;
};

// Throws thinkeys::Error naming the line for an unterminated tag, comment or
// string, or a character that starts no token.
std::vector<Piece> lex(std::string_view source, const LexOptions& options = {});

}  // namespace thinkeys::jinja
