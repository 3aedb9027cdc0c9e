// llama2.c checkpoint header arithmetic alone (torch-free, fast): the seven
// int32 fields and a claimed file size. Bytes 28..35, when present, are read
// as that size, so sizes far beyond the input (and overflowing products) are
// explored; otherwise the input's own size is used. An accepted header must
// describe exactly the file it was checked against.
#include <cstdint>
#include <cstring>
#include <span>

#include "io/llama2c_header.h"
#include "util/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  uint64_t file_size = size;
  if (size >= 36) std::memcpy(&file_size, data + 28, 8);
  try {
    auto h = thinkeys::parse_llama2c_header(
        std::span<const std::byte>(reinterpret_cast<const std::byte*>(data), size), file_size,
        "model.bin");
    if (h.file_bytes != file_size) __builtin_trap();
    h.config.validate();
  } catch (const thinkeys::Error&) {
  }
  return 0;
}
