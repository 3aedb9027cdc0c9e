// thinkeys tokenizer train: a SentencePiece BPE tokenizer from text files or a
// directory of shards, usable by every other subcommand (--tokenizer OUT).
#include <chrono>
#include <cstdio>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "tokenizer/tokenizer.h"
#include "train/token_cache.h"
#include "train/tokenizer_trainer.h"
#include "util/error.h"
#include "util/text_file.h"

namespace fs = std::filesystem;

namespace thinkeys::cli {

Command add_tokenizer(CLI::App& app) {
  struct Opts {
    std::string data, out;
    TokenizerTrainOptions t;
    bool json = false;
  };
  auto o = std::make_shared<Opts>();
  auto* tok = app.add_subcommand("tokenizer", "Tokenizer tools");
  tok->require_subcommand(1);
  auto* sub = tok->add_subcommand("train", "Train a SentencePiece BPE tokenizer on text");
  sub->add_option("--data", o->data,
                  "Text file or directory of .txt shards (valid*.txt and test*.txt skipped)")
      ->required();
  sub->add_option("--vocab-size", o->t.vocab_size, "Vocabulary size")->capture_default_str();
  sub->add_option("--model-type", o->t.model_type, "bpe or unigram")->capture_default_str();
  sub->add_option("--max-sentences", o->t.max_sentences,
                  "Lines sampled from the data for training (0: all)")
      ->capture_default_str();
  sub->add_option("--character-coverage", o->t.character_coverage,
                  "Fraction of characters covered by pieces (the rest fall back to bytes)")
      ->capture_default_str();
  sub->add_option("--seed", o->t.seed, "Sampling seed")->capture_default_str();
  sub->add_option("-o,--out", o->out, "Output directory (tokenizer.model, tokenizer.vocab)")
      ->required();
  sub->add_flag("--json", o->json, "Print JSON");
  return {tok, [o, sub] {
            if (!sub->parsed()) return;
            DataFiles files = find_data_files(o->data);
            o->t.inputs = files.train;
            o->t.out_dir = o->out;
            auto t0 = std::chrono::steady_clock::now();
            train_sentencepiece_tokenizer(o->t);
            double secs =
                std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
            auto tk = load_tokenizer(o->out);
            // Compression on held-out text when there is some: bytes per token.
            nlohmann::json j = {{"out", o->out},
                                {"vocab_size", tk->vocab_size()},
                                {"model_type", o->t.model_type},
                                {"inputs", files.train.size()},
                                {"seconds", secs}};
            if (!files.valid.empty()) {
              std::string text = read_file_bytes(files.valid.front());
              text.resize(std::min<size_t>(text.size(), 1 << 20));
              auto ids = tk->encode(text);
              if (tk->decode(ids) != text) throw Error("trained tokenizer does not round-trip");
              j["valid_bytes_per_token"] = static_cast<double>(text.size()) /
                                           static_cast<double>(std::max<size_t>(1, ids.size()));
            }
            if (o->json) {
              std::printf("%s\n", j.dump(2).c_str());
              return;
            }
            std::printf("tokenizer %s: %s, vocab %d, trained on %zu file(s) in %.1f s\n",
                        o->out.c_str(), tk->describe().c_str(), tk->vocab_size(),
                        files.train.size(), secs);
            if (j.contains("valid_bytes_per_token"))
              std::printf("held-out %.2f bytes per token (%s)\n",
                          j["valid_bytes_per_token"].get<double>(),
                          files.valid.front().filename().c_str());
          }};
}

}  // namespace thinkeys::cli
