// Hugging Face tokenizer.json (byte-level BPE): JSON structure, vocabulary,
// merges, added tokens, pre-tokenizer regexes. Whatever loads is then used to
// encode a few fixed texts and the input's own tail, and to decode arbitrary ids.
#include <cstdint>

#include "scratch_file.h"
#include "tokenizer/byte_bpe_tokenizer.h"
#include "tokenizer_probe.h"
#include "util/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto path = thinkeys::fuzz::write_scratch("tokenizer.json", {data, size});
  try {
    auto tok = thinkeys::load_tokenizer_json(path);
    thinkeys::fuzz::probe_loaded(*tok, {data, size});
  } catch (const thinkeys::Error&) {
  }
  return 0;
}
