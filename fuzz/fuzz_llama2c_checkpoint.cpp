// llama2.c checkpoints: seven int32 header fields whose products size the file.
// The loader must refuse every header that does not match the file exactly
// before it copies a byte; the fuzzer mostly explores that arithmetic.
#include <cstdint>

#include "checkpoint/llama2c_checkpoint.h"
#include "scratch_file.h"
#include "util/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto path = thinkeys::fuzz::write_scratch("model.bin", {data, size});
  (void)thinkeys::looks_like_llama2c_checkpoint(path);
  try {
    thinkeys::Model m = thinkeys::load_llama2c_checkpoint(path);
    if (m.config.vocab_size <= 0 ||
        m.weights.layers.size() != static_cast<size_t>(m.config.n_layers))
      __builtin_trap();
  } catch (const thinkeys::Error&) {
  }
  return 0;
}
