#pragma once
// One table of names per enum serves both directions: printing a value and
// parsing a user's string, with one error that lists what is accepted.
#include <span>
#include <string>
#include <string_view>

#include "util/error.h"

namespace thinkeys {

template <class E>
struct EnumName {
  E value;
  const char* name;
};

// The first name listed for a value is the one printed; later rows with the
// same value are accepted spellings (e.g. "float32" for f32).
template <class E>
const char* enum_name(std::span<const EnumName<E>> table, E value) {
  for (const auto& e : table)
    if (e.value == value) return e.name;
  return "?";
}

// "a, b or c" over the printed names (aliases left out).
template <class E>
std::string enum_choices(std::span<const EnumName<E>> table) {
  std::string out;
  std::size_t listed = 0, total = 0;
  for (std::size_t i = 0; i < table.size(); ++i)
    if (enum_name(table, table[i].value) == table[i].name) ++total;
  for (std::size_t i = 0; i < table.size(); ++i) {
    if (enum_name(table, table[i].value) != table[i].name) continue;
    if (listed > 0) out += listed + 1 == total ? " or " : ", ";
    out += table[i].name;
    ++listed;
  }
  return out;
}

// Throws "unknown <what> '<text>' (expected a, b or c)".
template <class E>
E parse_enum(std::span<const EnumName<E>> table, std::string_view text, std::string_view what) {
  for (const auto& e : table)
    if (text == e.name) return e.value;
  throw Error("unknown " + std::string(what) + " '" + std::string(text) + "' (expected " +
              enum_choices(table) + ")");
}

}  // namespace thinkeys
