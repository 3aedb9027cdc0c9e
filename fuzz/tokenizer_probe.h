#pragma once
// Shared checks for the tokenizer targets: whatever a loader accepted must
// encode any bytes and decode any ids without crashing; invalid ids may only
// be refused with thinkeys::Error.
#include <cstdint>
#include <span>
#include <string_view>

#include "scratch_file.h"
#include "tokenizer/tokenizer.h"
#include "util/error.h"

namespace thinkeys::fuzz {

// Encodes `text` and decodes the result. With `require_round_trip` (known-good
// tokenizers) decode(encode(text)) must give `text` back, as the Tokenizer
// contract promises; a mismatch aborts so libFuzzer records the input.
void probe_text(const Tokenizer& tok, std::string_view text, bool require_round_trip);

// Reads `bytes` as little-endian int32 ids (any value, in or out of range) and
// decodes them one by one.
void probe_ids(const Tokenizer& tok, std::span<const uint8_t> bytes);

// A few fixed texts that reach the interesting paths: ASCII words, runs of
// spaces, multi-byte UTF-8, invalid UTF-8, special-token lookalikes.
void probe_fixed_texts(const Tokenizer& tok);

// What every loader target checks on the tokenizer its input loaded: the
// fixed texts, the input's last 64 bytes as text and its first 256 as ids.
void probe_loaded(const Tokenizer& tok, std::span<const uint8_t> input);

// A loader target's whole body: the input written to the scratch file
// `file_name`, loaded with `load(path)` and, when it loads, probed as above.
// A refusal (thinkeys::Error) is the expected answer to bad bytes.
template <typename Load>
void probe_loader(std::span<const uint8_t> input, std::string_view file_name, Load load) {
  const auto path = write_scratch(file_name, input);
  try {
    const auto tok = load(path);
    probe_loaded(*tok, input);
  } catch (const Error&) {
  }
}

}  // namespace thinkeys::fuzz
