// load_tokenizer(): finds the tokenizer for a path (tokenizer file, model
// directory or checkpoint file) and dispatches to the format's loader.
#include <cctype>
#include <fstream>
#include <string>
#include <vector>

#include "tokenizer/byte_bpe_tokenizer.h"
#include "tokenizer/llama2c_tokenizer.h"
#include "tokenizer/sentencepiece_tokenizer.h"
#include "tokenizer/tokenizer.h"
#include "util/error.h"

namespace thinkeys {
namespace {

namespace fs = std::filesystem;

bool is_file(const fs::path& p) {
  std::error_code ec;
  return fs::is_regular_file(p, ec);
}

std::string quoted(const fs::path& p) { return "'" + p.string() + "'"; }

// The GPT-2 file pairs: a vocabulary and the merges file beside it.
struct BpePair {
  const char* vocab;
  const char* merges;
};
constexpr BpePair kBpePairs[] = {{"vocab.json", "merges.txt"}, {"encoder.json", "vocab.bpe"}};

std::unique_ptr<Tokenizer> load_bpe_pair(const fs::path& vocab, const fs::path& merges) {
  if (!is_file(merges)) {
    throw Error("BPE vocabulary " + quoted(vocab) + " needs its merges file " + quoted(merges) +
                ", which does not exist");
  }
  if (!is_file(vocab)) {
    throw Error("BPE merges file " + quoted(merges) + " needs its vocabulary " + quoted(vocab) +
                ", which does not exist");
  }
  return load_gpt2_bpe(vocab, merges);
}

// Replaces the suffix `from` of the file name with `to` ("gpt2-vocab.json" ->
// "gpt2-merges.txt"), so prefixed pairs are found too.
fs::path sibling(const fs::path& file, std::string_view from, std::string_view to) {
  std::string name = file.filename().string();
  name.replace(name.size() - from.size(), from.size(), to);
  return file.parent_path() / name;
}

// A tokenizer.json is JSON; checkpoints (safetensors headers aside) are not.
bool starts_like_json(const fs::path& file) {
  std::ifstream in(file, std::ios::binary);
  char c = 0;
  while (in.get(c)) {
    if (!std::isspace(static_cast<unsigned char>(c))) return c == '{';
  }
  return false;
}

std::unique_ptr<Tokenizer> search_directory(const fs::path& dir, std::optional<int32_t> vocab,
                                            const std::string& context, bool llama2c_first) {
  std::vector<std::string> notes;
  auto try_llama2c = [&]() -> std::unique_ptr<Tokenizer> {
    if (vocab) {
      const fs::path tok = dir / ("tok" + std::to_string(*vocab) + ".bin");
      if (is_file(tok)) return load_llama2c_tokenizer(tok, vocab);
    }
    if (is_file(dir / "tokenizer.bin")) return load_llama2c_tokenizer(dir / "tokenizer.bin", vocab);
    return nullptr;
  };

  if (llama2c_first) {
    if (auto tok = try_llama2c()) return tok;
  }
  if (const fs::path json = dir / "tokenizer.json"; is_file(json)) {
    try {
      return load_tokenizer_json(json);
    } catch (const UnsupportedTokenizerJson& e) {
      // e.g. Llama-2's tokenizer.json, a SentencePiece BPE: tokenizer.model
      // describes the same tokenizer in a form we support.
      if (!is_file(dir / "tokenizer.model")) throw;
      notes.push_back(std::string("skipped tokenizer.json: ") + e.what());
    }
  }
  for (const BpePair& pair : kBpePairs) {
    const fs::path v = dir / pair.vocab, m = dir / pair.merges;
    if (is_file(v) && is_file(m)) return load_gpt2_bpe(v, m);
    if (is_file(v) != is_file(m)) {
      notes.push_back(std::string(is_file(v) ? pair.vocab : pair.merges) + " without " +
                      (is_file(v) ? pair.merges : pair.vocab));
    }
  }
  if (is_file(dir / "tokenizer.model")) return load_sentencepiece(dir / "tokenizer.model");
  if (!llama2c_first) {
    if (auto tok = try_llama2c()) return tok;
  }

  std::string msg = "no tokenizer found in " + quoted(dir) + context +
                    ": looked for tokenizer.json, vocab.json + merges.txt, encoder.json + "
                    "vocab.bpe, tokenizer.model, ";
  if (vocab) msg += "tok" + std::to_string(*vocab) + ".bin, ";
  msg += "tokenizer.bin";
  for (const std::string& note : notes) msg += "; " + note;
  throw Error(msg);
}

std::unique_ptr<Tokenizer> load_file(const fs::path& file, std::optional<int32_t> vocab) {
  const std::string name = file.filename().string();
  const std::string ext = file.extension().string();
  for (const BpePair& pair : kBpePairs) {
    if (name.ends_with(pair.vocab)) {
      return load_bpe_pair(file, sibling(file, pair.vocab, pair.merges));
    }
    if (name.ends_with(pair.merges)) {
      return load_bpe_pair(sibling(file, pair.merges, pair.vocab), file);
    }
  }
  if (ext == ".json") return load_tokenizer_json(file);
  if (ext == ".model") return load_sentencepiece(file);
  if (looks_like_llama2c_tokenizer(file)) return load_llama2c_tokenizer(file, vocab);
  if (ext != ".bin" && starts_like_json(file)) return load_tokenizer_json(file);
  // Anything else is taken to be a model checkpoint; its tokenizer lives beside
  // it. A llama2.c checkpoint (.bin) prefers tok<vocab>.bin / tokenizer.bin.
  return search_directory(file.parent_path().empty() ? fs::path(".") : file.parent_path(), vocab,
                          " (beside checkpoint " + quoted(file) + ")", ext == ".bin");
}

}  // namespace

std::unique_ptr<Tokenizer> load_tokenizer(const fs::path& path,
                                          std::optional<int32_t> expected_vocab) {
  if (expected_vocab && *expected_vocab <= 0) {
    throw Error("cannot load tokenizer " + quoted(path) + " for a vocabulary of " +
                std::to_string(*expected_vocab) + " tokens");
  }
  std::error_code ec;
  const fs::file_status status = fs::status(path, ec);
  if (!fs::exists(status)) throw Error("tokenizer path " + quoted(path) + " does not exist");
  std::unique_ptr<Tokenizer> tok = fs::is_directory(status)
                                       ? search_directory(path, expected_vocab, "", false)
                                       : load_file(path, expected_vocab);
  // Hugging Face models often pad the embedding beyond the tokenizer, so only a
  // tokenizer that can emit ids the model lacks is an error.
  if (expected_vocab && tok->vocab_size() > *expected_vocab) {
    throw Error("tokenizer " + tok->describe() + " loaded from " + quoted(path) + " has " +
                std::to_string(tok->vocab_size()) +
                " tokens, more than the model's vocabulary of " + std::to_string(*expected_vocab));
  }
  return tok;
}

}  // namespace thinkeys
