#pragma once
// Text -> token ids, once per (tokenizer, file): the ids are cached in a
// binary file keyed by the tokenizer's identity and the text file's path, size
// and modification time, so re-running a training reads ids instead of
// re-tokenizing hundreds of megabytes.
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "tokenizer/tokenizer.h"

namespace thinkeys {

// $THINKEYS_CACHE_DIR, else $XDG_CACHE_HOME/thinkeys, else ~/.cache/thinkeys;
// token files go in its "tokens" subdirectory.
std::filesystem::path default_cache_dir();

// Identity of a tokenizer for cache keys: its description and vocabulary plus
// the names, sizes and modification times of the file it was loaded from (for
// a directory: of its tokenizer files only, so a model directory and its
// compressed copy with the same tokenizer share cached ids).
std::string tokenizer_fingerprint(const Tokenizer& tok, const std::filesystem::path& loaded_from);

// Names the tokenizer loader recognises (tokenizer.json, encoder.json,
// vocab.bpe, tokenizer.model, tokenizer.bin, tok<N>.bin, ...).
bool is_tokenizer_file(const std::filesystem::path& p);

struct TokenizeOptions {
  std::filesystem::path cache_dir;  // empty: default_cache_dir()
  bool show_progress = true;
  int threads = 2;         // the text is cut at blank lines into ~1 MiB pieces, encoded in parallel
  bool append_eos = true;  // end the file's ids with EOS (when the tokenizer has one)
};

// Ids of the whole file, from the cache when valid, else tokenized and cached.
// The pieces' boundaries depend only on the text, so results do not depend on
// the thread count.
std::vector<int32_t> tokenize_file_cached(const std::filesystem::path& text_file,
                                          const Tokenizer& tok, const std::string& fingerprint,
                                          const TokenizeOptions& options);

// Training and validation text files under `data`: a file is used as is; a
// directory contributes its *.txt files (sorted), with valid*.txt / val*.txt /
// *valid* as validation, test*.txt / *.test* / *_test* / *-test* left out
// entirely (held-out text for reported figures), and the rest as training.
// Throws Error for missing or empty data.
struct DataFiles {
  std::vector<std::filesystem::path> train, valid;
};
DataFiles find_data_files(const std::filesystem::path& data);

}  // namespace thinkeys
