#pragma once
// Token streams for training runs: text files or a directory of shards,
// tokenized once (token_cache.h), concatenated in file order.
#include <cstdint>
#include <filesystem>
#include <vector>

#include "train/token_cache.h"

namespace thinkeys {

struct TextData {
  std::vector<int32_t> train, valid;
  std::vector<std::filesystem::path> train_files, valid_files;
  bool valid_held_out = false;  // no validation file: the last 1% of training tokens
};

// `data`: a text file or a directory (see find_data_files); `valid`: optional
// explicit validation file. max_train_tokens > 0 keeps only the first N
// training tokens (files are read in order, later ones not tokenized).
TextData load_text_data(const std::filesystem::path& data, const std::filesystem::path& valid,
                        const Tokenizer& tok, const std::string& fingerprint,
                        const TokenizeOptions& options, int64_t max_train_tokens = 0);

}  // namespace thinkeys
