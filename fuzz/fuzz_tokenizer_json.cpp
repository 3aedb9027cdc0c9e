// Hugging Face tokenizer.json (byte-level BPE): JSON structure, vocabulary,
// merges, added tokens, pre-tokenizer regexes. Whatever loads is then used to
// encode a few fixed texts and the input's own tail, and to decode arbitrary ids.
#include <cstdint>

#include "tokenizer/byte_bpe_tokenizer.h"
#include "tokenizer_probe.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  thinkeys::fuzz::probe_loader({data, size}, "tokenizer.json", [](const auto& path) {
    return thinkeys::load_tokenizer_json(path);
  });
  return 0;
}
