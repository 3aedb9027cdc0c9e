#pragma once
// Training a SentencePiece BPE tokenizer on text files (e.g. the Gutenberg
// shards). libsentencepiece runs inside the dlopen'ed module
// (tokenizer/sentencepiece_backend.h), so this works in processes that also
// load libtorch. Torch-free.
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace thinkeys {

struct TokenizerTrainOptions {
  std::vector<std::filesystem::path> inputs;  // text files, one sentence per line
  std::filesystem::path out_dir;              // receives tokenizer.model and tokenizer.vocab
  int vocab_size = 8000;
  std::string model_type = "bpe";   // bpe or unigram
  int64_t max_sentences = 1000000;  // lines sampled from the inputs (0: all)
  double character_coverage = 0.9995;
  bool byte_fallback = true;  // unknown characters become bytes: encode never fails
  int threads = 2;
  uint64_t seed = 42;
};

// Trains and writes `out_dir` atomically (a fresh directory with the model).
// Throws Error with SentencePiece's message on failure.
void train_sentencepiece_tokenizer(const TokenizerTrainOptions& options);

// The SentencePieceTrainer flag string used for `options` (for tests and logs).
std::string sentencepiece_train_flags(const TokenizerTrainOptions& options,
                                      const std::filesystem::path& model_prefix);

}  // namespace thinkeys
