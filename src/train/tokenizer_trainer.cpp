#include "train/tokenizer_trainer.h"

#include "tokenizer/sentencepiece_backend.h"
#include "util/atomic_output.h"
#include "util/error.h"

namespace fs = std::filesystem;

namespace thinkeys {

std::string sentencepiece_train_flags(const TokenizerTrainOptions& o, const fs::path& prefix) {
  // SentencePiece splits --input on commas and flags on spaces.
  auto check = [](const std::string& p) {
    if (p.find_first_of(", ") != std::string::npos)
      throw Error("SentencePiece cannot take paths containing commas or spaces: " + p);
  };
  std::string inputs;
  for (const auto& f : o.inputs) {
    check(f.string());
    inputs += (inputs.empty() ? "" : ",") + f.string();
  }
  check(prefix.string());
  std::string flags = "--input=" + inputs + " --model_prefix=" + prefix.string() +
                      " --vocab_size=" + std::to_string(o.vocab_size) +
                      " --model_type=" + o.model_type +
                      " --character_coverage=" + std::to_string(o.character_coverage) +
                      " --byte_fallback=" + (o.byte_fallback ? "true" : "false") +
                      " --num_threads=" + std::to_string(std::max(1, o.threads)) +
                      " --random_seed=" + std::to_string(o.seed) +
                      // Llama's ids: <unk> 0, <s> 1, </s> 2, no padding piece.
                      " --unk_id=0 --bos_id=1 --eos_id=2 --pad_id=-1" +
                      " --split_digits=true --allow_whitespace_only_pieces=true" +
                      " --remove_extra_whitespaces=false --normalization_rule_name=identity" +
                      " --train_extremely_large_corpus=false";
  if (o.max_sentences > 0)
    flags += " --input_sentence_size=" + std::to_string(o.max_sentences) +
             " --shuffle_input_sentence=true";
  return flags;
}

void train_sentencepiece_tokenizer(const TokenizerTrainOptions& o) {
  if (o.inputs.empty()) throw Error("tokenizer training needs at least one text file");
  for (const auto& f : o.inputs)
    if (!fs::is_regular_file(f))
      throw Error("tokenizer training input " + f.string() + " not found");
  if (o.vocab_size < 260)
    throw Error("vocabulary size must be at least 260 (256 byte pieces + specials)");
  if (o.model_type != "bpe" && o.model_type != "unigram")
    throw Error("model type must be bpe or unigram (got '" + o.model_type + "')");
  if (o.out_dir.empty()) throw Error("tokenizer training needs an output directory");
  auto backend = make_sentencepiece_backend();
  write_directory_atomically(o.out_dir, [&](const fs::path& tmp) {
    std::string err = backend->train(sentencepiece_train_flags(o, tmp / "tokenizer"));
    if (!err.empty()) throw Error("SentencePiece training failed: " + err);
    if (!fs::exists(tmp / "tokenizer.model"))
      throw Error("SentencePiece training produced no tokenizer.model");
  });
}

}  // namespace thinkeys
