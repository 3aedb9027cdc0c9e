#pragma once
// UTF-8 helpers shared by the tokenizers. Tokenizers must accept arbitrary bytes,
// while PCRE2 and SentencePiece only accept valid UTF-8, so inputs are cut into
// maximal valid runs and single invalid bytes before they reach either library.
#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace thinkeys::unicode {

// Length (1-4) of the well-formed UTF-8 sequence starting at s[pos] (RFC 3629:
// no overlong forms, no surrogates, nothing above U+10FFFF), or 0 if there is none.
std::size_t utf8_sequence_length(std::string_view s, std::size_t pos);

// A piece of an arbitrary byte string: either a maximal run of valid UTF-8, or
// exactly one byte that does not start a valid sequence.
struct Utf8Piece {
  std::string_view bytes;
  bool valid;
};

// Pieces in input order; concatenating them gives back `s`.
std::vector<Utf8Piece> split_utf8(std::string_view s);

// Appends the UTF-8 encoding of `cp` (which must be a valid scalar value).
void append_utf8(std::string& out, char32_t cp);

// Decodes the well-formed sequence of length `len` at s[pos] (see
// utf8_sequence_length).
char32_t decode_utf8(std::string_view s, std::size_t pos, std::size_t len);

// GPT-2's reversible byte -> printable character map: the printable Latin-1
// bytes (33-126, 161-172, 174-255) map to themselves, the remaining 68 bytes in
// increasing order to U+0100, U+0101, ... Returns the UTF-8 text of each byte's
// character.
const std::array<std::string, 256>& byte_to_unicode();

// Inverse of byte_to_unicode() on code points; -1 for characters outside the map.
int unicode_to_byte(char32_t cp);

}  // namespace thinkeys::unicode
