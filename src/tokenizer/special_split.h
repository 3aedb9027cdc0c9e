#pragma once
// Cutting text at special (added) tokens before ordinary tokenization, as
// Hugging Face does: the leftmost special token first and, at one position,
// the longest. Used by the byte-level BPE tokenizer for its added tokens and
// by TokenizerConventions for the special tokens named in a model's files.
#include <cstdint>
#include <string_view>

namespace thinkeys {

// `candidates(c)` lists the (text, id) pairs that may start at a byte c,
// longest first. `ordinary` gets each stretch of text between special tokens
// (possibly empty), `special` the id of each special token, in text order.
template <typename Candidates, typename Ordinary, typename Special>
void split_at_special_tokens(std::string_view text, const Candidates& candidates,
                             Ordinary&& ordinary, Special&& special) {
  std::size_t start = 0;
  std::size_t i = 0;
  while (i < text.size()) {
    bool matched = false;
    for (const auto& [token, id] : candidates(static_cast<unsigned char>(text[i]))) {
      if (text.substr(i).starts_with(token)) {
        ordinary(text.substr(start, i - start));
        special(static_cast<int32_t>(id));
        i += token.size();
        start = i;
        matched = true;
        break;
      }
    }
    if (!matched) ++i;
  }
  ordinary(text.substr(start));
}

}  // namespace thinkeys
