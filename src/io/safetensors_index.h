#pragma once
// model.safetensors.index.json: which shard file holds each tensor of a
// sharded Hugging Face checkpoint. Torch-free so it can be fuzzed on its own.
#include <map>
#include <string>

namespace thinkeys {

// Tensor name -> shard file name. Shard names must be plain file names (no
// directories, no ".."), so an index cannot point outside its checkpoint.
// Throws Error naming `origin` for malformed JSON or entries.
std::map<std::string, std::string> parse_safetensors_index(const std::string& json_text,
                                                           const std::string& origin);

}  // namespace thinkeys
