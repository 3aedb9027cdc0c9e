#include "cli/shared_options.h"

#include <CLI/CLI.hpp>

#include "runtime/sampler.h"

namespace thinkeys::cli {

void add_model_argument(CLI::App* sub, std::string& model) {
  sub->add_option("model", model, "Model directory (Hugging Face) or llama2.c .bin")->required();
}

void add_tokenizer_option(CLI::App* sub, std::string& tokenizer) {
  sub->add_option("--tokenizer", tokenizer,
                  "Tokenizer file or directory (default: beside the model)");
}

void add_chat_template_option(CLI::App* sub, std::string& chat_template) {
  sub->add_option("--chat-template", chat_template,
                  "Built-in template (chatml, llama2, llama3, mistral) or a template file "
                  "(default: the model's own)");
}

void add_sampling_options(CLI::App* sub, SamplingParams& s) {
  sub->add_option("--temp,-t", s.temperature, "Temperature (0 = greedy)")
      ->check(CLI::NonNegativeNumber);
  sub->add_option("--top-p", s.top_p, "Nucleus sampling mass in (0, 1]");
  sub->add_option("--seed,-s", s.seed, "Random seed for sampling");
}

}  // namespace thinkeys::cli
