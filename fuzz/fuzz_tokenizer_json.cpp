// Hugging Face tokenizer.json (byte-level BPE): JSON structure, vocabulary,
// merges, added tokens, pre-tokenizer regexes. Whatever loads is then used to
// encode a few fixed texts and the input's own tail, and to decode arbitrary ids.
#include <algorithm>
#include <cstdint>
#include <string_view>

#include "scratch_file.h"
#include "tokenizer/byte_bpe_tokenizer.h"
#include "tokenizer_probe.h"
#include "util/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto path = thinkeys::fuzz::write_scratch("tokenizer.json", {data, size});
  try {
    auto tok = thinkeys::load_tokenizer_json(path);
    thinkeys::fuzz::probe_fixed_texts(*tok);
    size_t tail = std::min<size_t>(size, 64);
    thinkeys::fuzz::probe_text(
        *tok, std::string_view(reinterpret_cast<const char*>(data + size - tail), tail), false);
    thinkeys::fuzz::probe_ids(*tok, {data, std::min<size_t>(size, 256)});
  } catch (const thinkeys::Error&) {
  }
  return 0;
}
