#pragma once
// The architecture a llama2.c checkpoint's 28-byte header describes, read
// without the weights: the loader builds its model from it and the capacity
// planner plans from it. Torch-free.
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <span>
#include <string>

#include "config/model_config.h"

namespace thinkeys {

// Seven int32 fields: dim, hidden_dim, n_layers, n_heads, n_kv_heads,
// vocab_size (negative: a separate classifier follows), seq_len.
inline constexpr std::size_t kLlama2cHeaderBytes = 28;

// Whether the file starts like a llama2.c checkpoint (cheap, header only).
bool looks_like_llama2c_checkpoint(const std::filesystem::path& file);

struct Llama2cHeader {
  ModelConfig config;
  bool shared_classifier = false;  // the classifier is the embedding table
  std::uint64_t file_bytes = 0;    // what the header implies the whole file holds
};

// `bytes` starts at the file's first byte (28 bytes at least for a
// checkpoint); file_size is the whole file's. Throws Error naming `where` for
// a truncated file, the versioned export, implausible header values, or a
// size that does not match the header.
Llama2cHeader parse_llama2c_header(std::span<const std::byte> bytes, std::uint64_t file_size,
                                   const std::string& where);
// Reads the header alone from disk.
Llama2cHeader read_llama2c_header(const std::filesystem::path& file);

}  // namespace thinkeys
