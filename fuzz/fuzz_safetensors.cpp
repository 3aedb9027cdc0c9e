// Safetensors reader: header length, header JSON, offsets and shapes against
// the file size. Every view handed out is read end to end, so an offset that
// escapes the mapping shows up as an ASan report rather than going unnoticed.
#include <cstdint>
#include <span>

#include "io/safetensors.h"
#include "scratch_file.h"
#include "util/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto path = thinkeys::fuzz::write_scratch("model.safetensors", {data, size});
  try {
    thinkeys::SafetensorsFile file(path);
    unsigned sum = 0;
    for (const auto& [name, view] : file.tensors()) {
      if (view.numel() * thinkeys::dtype_size(view.dtype) !=
          static_cast<int64_t>(view.bytes.size()))
        __builtin_trap();  // the reader promised shape and bytes agree
      for (std::byte b : view.bytes) sum += static_cast<unsigned>(b);
    }
    for (const auto& [k, v] : file.metadata()) sum += static_cast<unsigned>(k.size() + v.size());
    (void)file.at("model.embed_tokens.weight");
    asm volatile("" : : "r"(sum));
  } catch (const thinkeys::Error&) {
  }
  return 0;
}
