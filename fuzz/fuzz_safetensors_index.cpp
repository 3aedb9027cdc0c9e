// model.safetensors.index.json: the tensor -> shard map of sharded checkpoints.
// Besides not crashing, no accepted shard name may leave the checkpoint directory.
#include <cstdint>
#include <string>

#include "io/safetensors_index.h"
#include "util/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string text(reinterpret_cast<const char*>(data), size);
  try {
    for (const auto& [tensor, shard] : thinkeys::parse_safetensors_index(text, "index.json"))
      if (shard.empty() || shard.find('/') != std::string::npos || shard == "." || shard == "..")
        __builtin_trap();
  } catch (const thinkeys::Error&) {
  }
  return 0;
}
