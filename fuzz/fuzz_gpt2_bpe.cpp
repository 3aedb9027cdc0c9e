// GPT-2's vocab.json + merges.txt pair. One input holds both files, split at
// the first "\0merges.txt\0" (absent: the whole input is the vocabulary and
// the merges file is empty).
#include <algorithm>
#include <cstdint>
#include <string_view>

#include "scratch_file.h"
#include "tokenizer/byte_bpe_tokenizer.h"
#include "tokenizer_probe.h"
#include "util/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  constexpr std::string_view kSeparator("\0merges.txt\0", 12);
  std::string_view all(reinterpret_cast<const char*>(data), size);
  size_t cut = all.find(kSeparator);
  std::string_view vocab = all.substr(0, cut);
  std::string_view merges =
      cut == std::string_view::npos ? std::string_view() : all.substr(cut + kSeparator.size());
  auto as_bytes = [](std::string_view s) {
    return std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(s.data()), s.size());
  };
  auto vocab_path = thinkeys::fuzz::write_scratch("vocab.json", as_bytes(vocab));
  auto merges_path = thinkeys::fuzz::write_scratch("merges.txt", as_bytes(merges));
  try {
    auto tok = thinkeys::load_gpt2_bpe(vocab_path, merges_path);
    thinkeys::fuzz::probe_fixed_texts(*tok);
    thinkeys::fuzz::probe_text(*tok, merges.substr(0, 64), false);
    thinkeys::fuzz::probe_ids(*tok, as_bytes(merges.substr(0, 256)));
  } catch (const thinkeys::Error&) {
  }
  return 0;
}
