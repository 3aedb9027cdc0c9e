#pragma once
// Options several commands take (the model, its tokenizer and chat template,
// sampling), declared once so that every command spells and explains them
// alike, as cache_options.h does for the paged cache.
#include <string>

namespace CLI {
class App;
}

namespace thinkeys {
struct SamplingParams;  // runtime/sampler.h
}

namespace thinkeys::cli {

// The required positional `model`: a Hugging Face directory or a llama2.c .bin.
void add_model_argument(CLI::App* sub, std::string& model);

// --tokenizer, defaulting to the tokenizer beside the model.
void add_tokenizer_option(CLI::App* sub, std::string& tokenizer);

// --chat-template for commands that render a conversation in the terminal
// (chat, tokenize): a built-in name or a template file.
void add_chat_template_option(CLI::App* sub, std::string& chat_template);

// --temp/-t, --top-p and --seed/-s into `s` (which must outlive parsing).
void add_sampling_options(CLI::App* sub, SamplingParams& s);

}  // namespace thinkeys::cli
