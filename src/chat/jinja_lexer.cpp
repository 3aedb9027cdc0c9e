#include "chat/jinja_lexer.h"

#include <algorithm>
#include <cctype>
#include <cstdint>

#include "tokenizer/unicode.h"
#include "util/error.h"

namespace thinkeys::jinja {
namespace {

bool is_space(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

class Lexer {
 public:
  Lexer(std::string_view src, const LexOptions& options) : src_(src), options_(options) {}

  std::vector<Piece> run() {
    std::size_t pos = 0;
    bool strip_next = false;  // a `-` before the previous tag's end
    bool trim_next = false;   // trim_blocks after the previous statement or comment
    while (pos < src_.size()) {
      const std::size_t start = next_tag(pos);
      std::size_t text_begin = pos;
      std::string_view text =
          drop_leading(src_.substr(pos, start - pos), text_begin, strip_next, trim_next);
      strip_next = trim_next = false;
      if (start == src_.size()) {
        emit_text(text, text_begin);
        break;
      }
      const char opener = src_[start + 1];
      const char modifier = start + 2 < src_.size() ? src_[start + 2] : '\0';
      if (modifier == '-') {
        while (!text.empty() && is_space(text.back())) text.remove_suffix(1);
      } else if (opener != '{' && options_.lstrip_blocks && modifier != '+') {
        text = lstrip_line(text, text_begin);
      }
      emit_text(text, text_begin);
      std::size_t body = start + 2 + ((modifier == '-' || modifier == '+') ? 1 : 0);
      if (opener == '#') {
        const std::size_t end = src_.find("#}", body);
        if (end == std::string_view::npos) fail(start, "comment {# is never closed by #}");
        strip_next = end > body && src_[end - 1] == '-';
        trim_next = !strip_next && options_.trim_blocks;
        pos = end + 2;
        continue;
      }
      Piece piece{
          opener == '{' ? Piece::Kind::Output : Piece::Kind::Statement, {}, {}, line_at(start)};
      char end_modifier = '\0';
      pos = tokenize(body, opener, piece.tokens, end_modifier);
      strip_next = end_modifier == '-';
      trim_next = opener == '%' && end_modifier != '+' && options_.trim_blocks;
      if (piece.kind == Piece::Kind::Statement && piece.tokens.size() == 1 &&
          piece.tokens[0].kind == Token::Kind::Name && piece.tokens[0].text == "raw") {
        pos = raw_body(pos, start, strip_next, trim_next);
        continue;
      }
      pieces_.push_back(std::move(piece));
    }
    return std::move(pieces_);
  }

 private:
  std::size_t next_tag(std::size_t from) const {
    std::size_t p = from;
    while ((p = src_.find('{', p)) != std::string_view::npos) {
      if (p + 1 < src_.size() && (src_[p + 1] == '{' || src_[p + 1] == '%' || src_[p + 1] == '#')) {
        return p;
      }
      ++p;
    }
    return src_.size();
  }

  // Whitespace control of the tag before `text`: a `-` before its end drops
  // all leading whitespace, trim_blocks one newline. `begin` (the offset of
  // text in the source) moves past what is dropped.
  static std::string_view drop_leading(std::string_view text, std::size_t& begin, bool strip,
                                       bool trim) {
    if (strip) {
      while (!text.empty() && is_space(text.front())) {
        text.remove_prefix(1);
        ++begin;
      }
    } else if (trim && !text.empty() && text.front() == '\n') {
      text.remove_prefix(1);
      ++begin;
    }
    return text;
  }

  // lstrip_blocks: spaces and tabs between the start of a line and a tag go.
  std::string_view lstrip_line(std::string_view text, std::size_t text_begin) const {
    const std::size_t nl = text.rfind('\n');
    const std::size_t line_start = nl == std::string_view::npos ? 0 : nl + 1;
    const bool at_line_start = line_start > 0 || text_begin == 0 || src_[text_begin - 1] == '\n';
    if (!at_line_start) return text;
    for (std::size_t i = line_start; i < text.size(); ++i) {
      if (text[i] != ' ' && text[i] != '\t') return text;
    }
    return text.substr(0, line_start);
  }

  void emit_text(std::string_view text, std::size_t begin) {
    if (text.empty()) return;
    if (!pieces_.empty() && pieces_.back().kind == Piece::Kind::Text) {
      pieces_.back().text += text;
      return;
    }
    pieces_.push_back({Piece::Kind::Text, std::string(text), {}, line_at(begin)});
  }

  // {% raw %}...{% endraw %}: the body is text, tags and all.
  std::size_t raw_body(std::size_t pos, std::size_t raw_start, bool strip, bool trim) {
    std::size_t search = pos;
    while (true) {
      const std::size_t open = src_.find("{%", search);
      if (open == std::string_view::npos)
        fail(raw_start, "{% raw %} is never closed by {% endraw %}");
      std::size_t p = open + 2;
      const bool minus_before = p < src_.size() && src_[p] == '-';
      if (p < src_.size() && (src_[p] == '-' || src_[p] == '+')) ++p;
      while (p < src_.size() && is_space(src_[p])) ++p;
      if (src_.substr(p, 6) != "endraw") {
        search = open + 2;
        continue;
      }
      p += 6;
      while (p < src_.size() && is_space(src_[p])) ++p;
      char end_modifier = '\0';
      if (p < src_.size() && (src_[p] == '-' || src_[p] == '+')) end_modifier = src_[p++];
      if (src_.substr(p, 2) != "%}") {
        search = open + 2;
        continue;
      }
      std::size_t begin = pos;
      std::string_view text = drop_leading(src_.substr(pos, open - pos), begin, strip, trim);
      if (minus_before) {
        while (!text.empty() && is_space(text.back())) text.remove_suffix(1);
      }
      emit_text(text, begin);
      std::size_t after = p + 2;
      if (end_modifier == '-') {
        while (after < src_.size() && is_space(src_[after])) ++after;
      } else if (end_modifier != '+' && options_.trim_blocks && after < src_.size() &&
                 src_[after] == '\n') {
        ++after;
      }
      return after;
    }
  }

  // Reads tokens up to the closing }} or %} (outside dict braces) and returns
  // the position after it.
  std::size_t tokenize(std::size_t p, char opener, std::vector<Token>& out, char& end_modifier) {
    const std::string_view close = opener == '{' ? "}}" : "%}";
    int braces = 0;  // `}}` inside a dict literal does not close the tag
    while (true) {
      while (p < src_.size() && is_space(src_[p])) ++p;
      if (p >= src_.size()) {
        fail(p, std::string(opener == '{' ? "{{" : "{%") + " is never closed by " +
                    std::string(close));
      }
      if (braces == 0 || opener == '%') {
        if (src_.substr(p, 2) == close) return p + 2;
        if ((src_[p] == '-' || (src_[p] == '+' && opener == '%')) &&
            src_.substr(p + 1, 2) == close) {
          end_modifier = src_[p];
          return p + 3;
        }
      }
      const char c = src_[p];
      const int line = line_at(p);
      if (c == '\'' || c == '"') {
        out.push_back({Token::Kind::String, string_literal(p), line});
      } else if (std::isdigit(static_cast<unsigned char>(c))) {
        std::size_t q = p;
        while (q < src_.size() &&
               (std::isdigit(static_cast<unsigned char>(src_[q])) || src_[q] == '_'))
          ++q;
        bool is_float = false;
        if (q + 1 < src_.size() && src_[q] == '.' &&
            std::isdigit(static_cast<unsigned char>(src_[q + 1]))) {
          is_float = true;
          ++q;
          while (q < src_.size() && std::isdigit(static_cast<unsigned char>(src_[q]))) ++q;
        }
        if (q < src_.size() && (src_[q] == 'e' || src_[q] == 'E')) {
          std::size_t r = q + 1;
          if (r < src_.size() && (src_[r] == '+' || src_[r] == '-')) ++r;
          if (r < src_.size() && std::isdigit(static_cast<unsigned char>(src_[r]))) {
            is_float = true;
            q = r;
            while (q < src_.size() && std::isdigit(static_cast<unsigned char>(src_[q]))) ++q;
          }
        }
        std::string text(src_.substr(p, q - p));
        text.erase(std::remove(text.begin(), text.end(), '_'), text.end());
        out.push_back({is_float ? Token::Kind::Float : Token::Kind::Integer, text, line});
        p = q;
      } else if (std::isalpha(static_cast<unsigned char>(c)) || c == '_') {
        std::size_t q = p;
        while (q < src_.size() &&
               (std::isalnum(static_cast<unsigned char>(src_[q])) || src_[q] == '_')) {
          ++q;
        }
        out.push_back({Token::Kind::Name, std::string(src_.substr(p, q - p)), line});
        p = q;
      } else {
        static constexpr std::string_view kTwo[] = {"//", "**", "==", "!=", "<=", ">="};
        std::string op;
        for (std::string_view two : kTwo) {
          if (src_.substr(p, 2) == two) op = two;
        }
        if (op.empty()) {
          if (std::string_view("+-*/%~<>=()[]{}.,:|").find(c) == std::string_view::npos) {
            fail(p, std::string("unexpected character '") + c + "' in a tag");
          }
          op = std::string(1, c);
        }
        if (op == "{") ++braces;
        if (op == "}" && braces > 0) --braces;
        out.push_back({Token::Kind::Operator, op, line});
        p += op.size();
      }
    }
  }

  // Python string-literal escapes, as Jinja reads them.
  std::string string_literal(std::size_t& p) {
    const char quote = src_[p];
    const std::size_t start = p++;
    std::string out;
    while (true) {
      if (p >= src_.size()) fail(start, "string literal is never closed");
      const char c = src_[p++];
      if (c == quote) return out;
      if (c != '\\') {
        out += c;
        continue;
      }
      if (p >= src_.size()) fail(start, "string literal is never closed");
      const char e = src_[p++];
      switch (e) {
        case 'n':
          out += '\n';
          break;
        case 't':
          out += '\t';
          break;
        case 'r':
          out += '\r';
          break;
        case 'b':
          out += '\b';
          break;
        case 'f':
          out += '\f';
          break;
        case 'v':
          out += '\v';
          break;
        case 'a':
          out += '\a';
          break;
        case '0':
          out += '\0';
          break;
        case '\\':
          out += '\\';
          break;
        case '\'':
          out += '\'';
          break;
        case '"':
          out += '"';
          break;
        case '\n':
          break;
        case 'x':
        case 'u':
        case 'U': {
          const int digits = e == 'x' ? 2 : e == 'u' ? 4 : 8;
          if (p + digits > src_.size()) fail(start, "truncated \\" + std::string(1, e) + " escape");
          uint32_t code = 0;
          for (int i = 0; i < digits; ++i) {
            const char h = src_[p + i];
            if (!std::isxdigit(static_cast<unsigned char>(h))) {
              fail(start, "bad \\" + std::string(1, e) + " escape in a string literal");
            }
            code = code * 16 + static_cast<uint32_t>(std::isdigit(static_cast<unsigned char>(h))
                                                         ? h - '0'
                                                         : std::tolower(h) - 'a' + 10);
          }
          p += digits;
          append_utf8(out, code, start);
          break;
        }
        default:  // Python keeps unknown escapes as written
          out += '\\';
          out += e;
      }
    }
  }

  void append_utf8(std::string& out, uint32_t c, std::size_t at) {
    if (c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF)) fail(at, "escape is not a Unicode scalar");
    thinkeys::unicode::append_utf8(out, static_cast<char32_t>(c));
  }

  int line_at(std::size_t pos) {
    // Positions only move forward, except re-reads within one tag, so count
    // incrementally from the last answer.
    if (pos < line_pos_) {
      line_pos_ = 0;
      line_ = 1;
    }
    line_ += static_cast<int>(std::count(src_.begin() + static_cast<std::ptrdiff_t>(line_pos_),
                                         src_.begin() + static_cast<std::ptrdiff_t>(pos), '\n'));
    line_pos_ = pos;
    return line_;
  }

  [[noreturn]] void fail(std::size_t pos, const std::string& what) {
    throw Error("chat template line " + std::to_string(line_at(std::min(pos, src_.size()))) + ": " +
                what);
  }

  std::string_view src_;
  LexOptions options_;
  std::vector<Piece> pieces_;
  std::size_t line_pos_ = 0;
  int line_ = 1;
};

}  // namespace

std::vector<Piece> lex(std::string_view source, const LexOptions& options) {
  return Lexer(source, options).run();
}

}  // namespace thinkeys::jinja
