// SentencePiece tokenizer.model (a protobuf parsed by libsentencepiece) and
// thinkeys' use of it: piece tables, byte fallback, control tokens. The target
// links the SentencePiece module's code directly (no libtorch here, so its
// protobuf cannot clash), which is what makes it usable under ASan.
#include <algorithm>
#include <cstdint>
#include <string_view>

#include "scratch_file.h"
#include "tokenizer/sentencepiece_tokenizer.h"
#include "tokenizer_probe.h"
#include "util/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto path = thinkeys::fuzz::write_scratch("tokenizer.model", {data, size});
  try {
    auto tok = thinkeys::load_sentencepiece(path);
    thinkeys::fuzz::probe_fixed_texts(*tok);
    size_t tail = std::min<size_t>(size, 64);
    thinkeys::fuzz::probe_text(
        *tok, std::string_view(reinterpret_cast<const char*>(data + size - tail), tail), false);
    thinkeys::fuzz::probe_ids(*tok, {data, std::min<size_t>(size, 256)});
  } catch (const thinkeys::Error&) {
  }
  return 0;
}
