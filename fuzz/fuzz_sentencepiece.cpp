// SentencePiece tokenizer.model (a protobuf parsed by libsentencepiece) and
// thinkeys' use of it: piece tables, byte fallback, control tokens. The target
// links the SentencePiece module's code directly (no libtorch here, so its
// protobuf cannot clash), which is what makes it usable under ASan.
#include <cstdint>

#include "scratch_file.h"
#include "tokenizer/sentencepiece_tokenizer.h"
#include "tokenizer_probe.h"
#include "util/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto path = thinkeys::fuzz::write_scratch("tokenizer.model", {data, size});
  try {
    auto tok = thinkeys::load_sentencepiece(path);
    thinkeys::fuzz::probe_loaded(*tok, {data, size});
  } catch (const thinkeys::Error&) {
  }
  return 0;
}
