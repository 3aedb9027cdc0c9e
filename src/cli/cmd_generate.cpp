#include <cstdio>

#include "cli/commands.h"
#include "cli/common.h"
#include "io/model_loader.h"
#include "model/generator.h"

namespace thinkeys::cli {

Command add_generate(CLI::App& app) {
  struct Opts {
    std::string model, tokenizer, prompt;
    int n = 256;
    double temp = 0.0, top_p = 1.0;
    uint64_t seed = 0;
    bool bos = false, no_bos = false, quiet = false;
  };
  auto opts = std::make_shared<Opts>();
  auto* sub = app.add_subcommand("generate", "Generate text, streaming tokens as they are chosen");
  sub->add_option("model", opts->model, "Model directory (Hugging Face) or llama2.c .bin")->required();
  sub->add_option("--prompt,-p", opts->prompt, "Prompt text (default: empty, start from BOS)");
  sub->add_option("-n,--tokens", opts->n, "Maximum new tokens")->check(CLI::NonNegativeNumber);
  sub->add_option("--temp,-t", opts->temp, "Temperature (0 = greedy)")->check(CLI::NonNegativeNumber);
  sub->add_option("--top-p", opts->top_p, "Nucleus sampling mass in (0, 1]");
  sub->add_option("--seed,-s", opts->seed, "Random seed for sampling");
  sub->add_option("--tokenizer", opts->tokenizer, "Tokenizer file or directory (default: beside the model)");
  sub->add_flag("--bos", opts->bos, "Always start with BOS");
  sub->add_flag("--no-bos", opts->no_bos, "Never add BOS");
  sub->add_flag("--quiet,-q", opts->quiet, "Do not print timing to stderr");
  return {sub, [opts] {
            Model m = load_model(opts->model);
            auto tok = tokenizer_for(opts->model, opts->tokenizer, m);
            int bos_mode = opts->bos ? 1 : opts->no_bos ? 0 : -1;
            auto prompt = prompt_tokens(m, *tok, opts->prompt, bos_mode);
            GenerateOptions g;
            g.max_new_tokens = opts->n;
            g.sampling = {opts->temp, opts->top_p, opts->seed};
            std::fwrite(opts->prompt.data(), 1, opts->prompt.size(), stdout);
            std::fflush(stdout);
            int32_t prev = prompt.back();
            GenerateStats stats;
            generate(
                m, prompt, g,
                [&](int32_t id) {
                  std::string piece = tok->decode_next(prev, id);
                  std::fwrite(piece.data(), 1, piece.size(), stdout);
                  std::fflush(stdout);
                  prev = id;
                },
                &stats);
            std::printf("\n");
            if (!opts->quiet)
              std::fprintf(stderr, "prompt %d tokens in %.3f s; generated %d tokens at %.1f tokens/s\n",
                           stats.prompt_tokens, stats.prefill_seconds, stats.generated_tokens,
                           stats.decode_seconds > 0 ? stats.generated_tokens / stats.decode_seconds : 0.0);
          }};
}

}  // namespace thinkeys::cli
