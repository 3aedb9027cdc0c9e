#include <cstdio>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "cli/common.h"
#include "eval/fidelity.h"
#include "checkpoint/model_loader.h"
#include "util/error.h"
#include "util/text_file.h"

namespace thinkeys::cli {

Command add_fidelity(CLI::App& app) {
  struct Opts {
    std::string model, reference, data, tokenizer;
    int ctx = 512;
    int64_t max_tokens = 0;
    bool json = false, no_bos = false;
  };
  auto opts = std::make_shared<Opts>();
  auto* sub = app.add_subcommand(
      "fidelity",
      "Per-layer relative error of QK^T, softmax weights and attention output vs the original");
  sub->add_option("model", opts->model, "Model directory (Hugging Face) or llama2.c .bin")
      ->required();
  sub->add_option("--reference", opts->reference, "Original model to compare against")->required();
  sub->add_option("--data", opts->data, "UTF-8 text file, run as one document")->required();
  sub->add_option("--ctx", opts->ctx, "Window length in tokens (windows do not overlap)")
      ->check(CLI::PositiveNumber);
  sub->add_option("--max-tokens", opts->max_tokens, "Use only the first N tokens of the file");
  sub->add_option("--tokenizer", opts->tokenizer,
                  "Tokenizer file or directory (default: beside the reference)");
  sub->add_flag("--no-bos", opts->no_bos, "Do not prepend BOS to the document");
  sub->add_flag("--json", opts->json, "Print JSON");
  return {sub, [opts] {
            std::string text = read_file_bytes(opts->data);
            if (text.empty()) throw Error("data file " + opts->data + " is empty");
            Model m = load_model(opts->model);
            Model ref = load_model(opts->reference);
            // The original is the model most sure to have its tokenizer beside it.
            auto mt = model_tokenizer(opts->reference, opts->tokenizer, &ref);
            auto tokens = prompt_tokens(ref, mt, text, opts->no_bos ? 0 : -1);
            if (opts->max_tokens > 0 && static_cast<int64_t>(tokens.size()) > opts->max_tokens)
              tokens.resize(static_cast<size_t>(opts->max_tokens));
            FidelityReport r = measure_fidelity(m, ref, tokens, opts->ctx, !opts->json);
            if (opts->json) {
              nlohmann::json layers = nlohmann::json::array();
              for (const auto& l : r.layers)
                layers.push_back({{"scores", l.scores}, {"probs", l.probs}, {"output", l.output}});
              nlohmann::json j = {{"model", opts->model},
                                  {"reference", opts->reference},
                                  {"data", opts->data},
                                  {"ctx", r.ctx},
                                  {"tokens", r.tokens},
                                  {"windows", r.windows},
                                  {"layers", layers},
                                  {"overall",
                                   {{"scores", r.overall.scores},
                                    {"probs", r.overall.probs},
                                    {"output", r.overall.output}}}};
              std::printf("%s\n", j.dump(2).c_str());
              return;
            }
            std::printf("%s vs reference %s\n", opts->model.c_str(), opts->reference.c_str());
            std::printf("data %s: %lld tokens in %lld windows of ctx %d\n", opts->data.c_str(),
                        static_cast<long long>(r.tokens), static_cast<long long>(r.windows), r.ctx);
            std::printf("relative Frobenius error ||X - X_ref|| / ||X_ref||\n");
            std::printf("%-7s %12s %12s %12s\n", "layer", "QK^T", "softmax", "output");
            for (size_t l = 0; l < r.layers.size(); ++l)
              std::printf("%-7zu %12.3e %12.3e %12.3e\n", l, r.layers[l].scores, r.layers[l].probs,
                          r.layers[l].output);
            std::printf("%-7s %12.3e %12.3e %12.3e\n", "all", r.overall.scores, r.overall.probs,
                        r.overall.output);
          }};
}

}  // namespace thinkeys::cli
