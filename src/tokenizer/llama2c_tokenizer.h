#pragma once
// llama2.c's tokenizer.bin: int32 max_token_length, then per token
// (float32 score, int32 length, bytes). The token count is not stored.
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>

#include "tokenizer/tokenizer.h"

namespace thinkeys {

// Reads exactly `vocab_size` tokens when given (llama2.c takes the count from the
// model header) and then requires the end of the file; otherwise reads tokens
// until the end of the file.
std::unique_ptr<Tokenizer> load_llama2c_tokenizer(const std::filesystem::path& file,
                                                  std::optional<int32_t> vocab_size = {});

// Cheap sniff (reads at most a few KB): does `file` start like a llama2.c
// tokenizer (sane header, then <unk>, <s>, </s> and the 256 byte tokens)? Used to
// tell tokenizer.bin from a model checkpoint .bin.
bool looks_like_llama2c_tokenizer(const std::filesystem::path& file);

}  // namespace thinkeys
