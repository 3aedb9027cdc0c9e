#pragma once
// Byte-level BPE as used by GPT-2 and by Hugging Face tokenizer.json files of the
// same family (Llama-3, Qwen2, ...).
#include <filesystem>
#include <memory>

#include "tokenizer/tokenizer.h"
#include "util/error.h"

namespace thinkeys {

// A well-formed tokenizer.json that describes something other than byte-level
// BPE (e.g. a SentencePiece-style BPE with byte_fallback and Metaspace). The
// loader uses this to fall back to a tokenizer.model beside it.
class UnsupportedTokenizerJson : public Error {
 public:
  using Error::Error;
};

// GPT-2 files: vocab.json + merges.txt, or OpenAI's encoder.json + vocab.bpe.
// `<|endoftext|>`, when in the vocabulary, is recognised in the input and serves
// as both BOS and EOS.
std::unique_ptr<Tokenizer> load_gpt2_bpe(const std::filesystem::path& vocab_json,
                                         const std::filesystem::path& merges_txt);

// A Hugging Face tokenizer.json whose model is byte-level BPE.
std::unique_ptr<Tokenizer> load_tokenizer_json(const std::filesystem::path& tokenizer_json);

}  // namespace thinkeys
