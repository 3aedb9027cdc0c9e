// llama2.c tokenizer.bin: max_token_length, then (score, length, bytes) per
// token. Loaded both ways the product does: to the end of the file, and with
// the token count a checkpoint header would give (taken from the first byte).
#include <cstdint>
#include <optional>

#include "scratch_file.h"
#include "tokenizer/llama2c_tokenizer.h"
#include "tokenizer_probe.h"
#include "util/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto path = thinkeys::fuzz::write_scratch("tokenizer.bin", {data, size});
  (void)thinkeys::looks_like_llama2c_tokenizer(path);
  for (std::optional<int32_t> count :
       {std::optional<int32_t>(), std::optional<int32_t>(size ? 250 + data[0] * 2 : 0)}) {
    try {
      auto tok = thinkeys::load_llama2c_tokenizer(path, count);
      thinkeys::fuzz::probe_loaded(*tok, {data, size});
    } catch (const thinkeys::Error&) {
    }
  }
  return 0;
}
