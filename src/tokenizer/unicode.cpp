#include "tokenizer/unicode.h"

namespace thinkeys::unicode {

namespace {

bool is_continuation(unsigned char c) { return (c & 0xC0) == 0x80; }

// The byte -> code point half of GPT-2's map; byte_to_unicode() and
// unicode_to_byte() are both derived from it.
constexpr std::array<char32_t, 256> make_byte_code_points() {
  std::array<char32_t, 256> cps{};
  char32_t next = 256;
  for (int b = 0; b < 256; ++b) {
    const bool printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174);
    cps[b] = printable ? static_cast<char32_t>(b) : next++;
  }
  return cps;
}

constexpr std::array<char32_t, 256> kByteCodePoints = make_byte_code_points();
// 173 is the last of the 68 remapped bytes, so it bounds the inverse table below.
static_assert(kByteCodePoints[173] == 0x143);

}  // namespace

std::size_t utf8_sequence_length(std::string_view s, std::size_t pos) {
  const std::size_t n = s.size();
  if (pos >= n) return 0;
  const auto c0 = static_cast<unsigned char>(s[pos]);
  if (c0 < 0x80) return 1;
  std::size_t len;
  // Bounds for the second byte exclude overlong forms (E0, F0), surrogates (ED)
  // and code points above U+10FFFF (F4), exactly as the Unicode standard's
  // table of well-formed byte sequences.
  unsigned char lo = 0x80, hi = 0xBF;
  if (c0 >= 0xC2 && c0 <= 0xDF) {
    len = 2;
  } else if (c0 >= 0xE0 && c0 <= 0xEF) {
    len = 3;
    if (c0 == 0xE0) lo = 0xA0;
    if (c0 == 0xED) hi = 0x9F;
  } else if (c0 >= 0xF0 && c0 <= 0xF4) {
    len = 4;
    if (c0 == 0xF0) lo = 0x90;
    if (c0 == 0xF4) hi = 0x8F;
  } else {
    return 0;
  }
  if (n - pos < len) return 0;
  const auto c1 = static_cast<unsigned char>(s[pos + 1]);
  if (c1 < lo || c1 > hi) return 0;
  for (std::size_t i = 2; i < len; ++i) {
    if (!is_continuation(static_cast<unsigned char>(s[pos + i]))) return 0;
  }
  return len;
}

std::vector<Utf8Piece> split_utf8(std::string_view s) {
  std::vector<Utf8Piece> pieces;
  std::size_t run_start = 0;
  std::size_t pos = 0;
  while (pos < s.size()) {
    const std::size_t len = utf8_sequence_length(s, pos);
    if (len > 0) {
      pos += len;
      continue;
    }
    if (pos > run_start) pieces.push_back({s.substr(run_start, pos - run_start), true});
    pieces.push_back({s.substr(pos, 1), false});
    ++pos;
    run_start = pos;
  }
  if (pos > run_start) pieces.push_back({s.substr(run_start, pos - run_start), true});
  return pieces;
}

void append_utf8(std::string& out, char32_t cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

char32_t decode_utf8(std::string_view s, std::size_t pos, std::size_t len) {
  const auto c0 = static_cast<unsigned char>(s[pos]);
  if (len == 1) return c0;
  static constexpr unsigned char kLeadMask[5] = {0, 0, 0x1F, 0x0F, 0x07};
  char32_t cp = c0 & kLeadMask[len];
  for (std::size_t i = 1; i < len; ++i) {
    cp = (cp << 6) | (static_cast<unsigned char>(s[pos + i]) & 0x3F);
  }
  return cp;
}

const std::array<std::string, 256>& byte_to_unicode() {
  static const std::array<std::string, 256> table = [] {
    std::array<std::string, 256> t;
    for (int b = 0; b < 256; ++b) append_utf8(t[b], kByteCodePoints[b]);
    return t;
  }();
  return table;
}

int unicode_to_byte(char32_t cp) {
  // Every mapped code point is below U+0144, so a flat table covers the inverse.
  static const std::array<int16_t, 0x144> table = [] {
    std::array<int16_t, 0x144> t;
    t.fill(-1);
    for (int b = 0; b < 256; ++b) t[kByteCodePoints[b]] = static_cast<int16_t>(b);
    return t;
  }();
  return cp < table.size() ? table[cp] : -1;
}

}  // namespace thinkeys::unicode
