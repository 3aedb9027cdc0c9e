// SentencePiece tokenizer.model (a protobuf parsed by libsentencepiece) and
// thinkeys' use of it: piece tables, byte fallback, control tokens. The target
// links the SentencePiece module's code directly (no libtorch here, so its
// protobuf cannot clash), which is what makes it usable under ASan.
#include <cstdint>

#include "tokenizer/sentencepiece_tokenizer.h"
#include "tokenizer_probe.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  thinkeys::fuzz::probe_loader({data, size}, "tokenizer.model",
                               [](const auto& path) { return thinkeys::load_sentencepiece(path); });
  return 0;
}
