#pragma once
// Tokenizer interface shared by the runtime, the evaluator and the CLI.
// Implementations: byte-level BPE (GPT-2 family, tokenizer.json), SentencePiece
// (tokenizer.model) and llama2.c's tokenizer.bin.
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace thinkeys {

// Which family of files a tokenizer came from; Hugging Face's defaults (BOS
// or not) differ between them.
enum class TokenizerKind {
  TokenizerJson,  // tokenizer.json (byte-level BPE)
  Gpt2Files,      // vocab.json + merges.txt or encoder.json + vocab.bpe
  SentencePiece,  // tokenizer.model
  Llama2c,        // tokenizer.bin / tok<N>.bin
};

// What a tokenizer.json post-processor adds around a single sequence.
struct PostProcessor {
  bool present = false;  // false: the file has none (or the format has none)
  std::vector<int32_t> before, after;
  std::string description;  // e.g. "TemplateProcessing <|begin_of_text|> $A"
};

class Tokenizer {
 public:
  virtual ~Tokenizer() = default;

  // Token ids of `text`, without BOS/EOS. Must accept any byte string
  // (including invalid UTF-8) and satisfy decode(encode(s)) == s.
  virtual std::vector<int32_t> encode(std::string_view text) const = 0;

  // Bytes that token `id` contributes when it follows token `prev`
  // (prev < 0 at the start of a text). decode() is the concatenation, so a
  // generator can stream output token by token.
  virtual std::string decode_next(int32_t prev, int32_t id) const = 0;

  std::string decode(std::span<const int32_t> ids) const {
    std::string out;
    int32_t prev = -1;
    for (int32_t id : ids) {
      out += decode_next(prev, id);
      prev = id;
    }
    return out;
  }

  virtual int32_t vocab_size() const = 0;
  virtual std::optional<int32_t> bos_id() const = 0;
  virtual std::optional<int32_t> eos_id() const = 0;
  virtual TokenizerKind kind() const = 0;
  // The id of the vocabulary entry or added token spelled `token` (for
  // example "<|im_end|>" or "<s>"), if there is one.
  virtual std::optional<int32_t> token_id(std::string_view token) const = 0;
  // Tokens the file declares as added or special (tokenizer.json's
  // added_tokens, SentencePiece control pieces, llama2.c's <s> and </s>).
  virtual std::vector<std::pair<std::string, int32_t>> added_tokens() const = 0;
  virtual PostProcessor post_processor() const { return {}; }
  // Human-readable name of the format, e.g. "byte-level BPE (vocab.json + merges.txt)".
  virtual std::string describe() const = 0;
};

// Loads a tokenizer from a file or a model directory. Recognised files:
// tokenizer.json; vocab.json + merges.txt; encoder.json + vocab.bpe;
// tokenizer.model (SentencePiece); tokenizer.bin / tok<N>.bin (llama2.c).
// For a llama2.c checkpoint file (model.bin) the directory beside it is searched,
// preferring tok<vocab_size>.bin. Throws thinkeys::Error when nothing usable exists
// or a file is malformed.
std::unique_ptr<Tokenizer> load_tokenizer(const std::filesystem::path& path,
                                          std::optional<int32_t> expected_vocab = {});

}  // namespace thinkeys
