#pragma once
// Helpers shared by subcommands: loading a model with its tokenizer, deciding
// on BOS, and formatting numbers.
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "model/weight_format_choice.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/tokenizer_conventions.h"

namespace CLI {
class App;
}

namespace thinkeys {
struct Model;  // model/weights.h: only references here, so CLI units that
               // do not load a model stay libtorch-free
}  // namespace thinkeys

namespace thinkeys::cli {

std::unique_ptr<Tokenizer> tokenizer_for(const std::string& model_path,
                                         const std::string& tokenizer_path, const Model& model);

// The tokenizer and its conventions (BOS rule, stop ids, special tokens, chat
// template) for a model, read without loading the weights when the model is
// a Hugging Face directory.
struct ModelTokenizer {
  std::unique_ptr<Tokenizer> tokenizer;
  TokenizerConventions conventions;
};
ModelTokenizer model_tokenizer(const std::string& model_path, const std::string& tokenizer_path,
                               const Model* model = nullptr);

// Prompt tokens: BOS first when the tokenizer's conventions add it (as
// Hugging Face's tokenizer(text) would), or when the prompt is empty and there
// is nothing else to condition on; special tokens are recognised by name.
std::vector<int32_t> prompt_tokens(const Model& model, const ModelTokenizer& mt,
                                   const std::string& text,
                                   int bos_mode);  // -1 auto, 0 never, 1 always

// {BOS} when prompt_tokens would put it first, else {}.
std::vector<int32_t> bos_prefix(const Model& model, const ModelTokenizer& mt, bool text_empty,
                                int bos_mode);

std::string human_bytes(double bytes);

// --weights for commands that run a model: "stored" (the checkpoint's dtype,
// the default), f32, bf16, f16 or int8; the result is load_model's argument.
void add_weights_option(CLI::App* sub, std::string& weights);
std::optional<WeightFormat> weights_choice(const std::string& weights);

// For commands that train tiny models (selection, demo): one BLAS thread per
// run, because BLAS threads on such small matrices only add hand-over cost
// (OpenBLAS threads spin and yield on a loaded machine); those commands spread
// whole runs over the cores instead. An explicit global --threads still wins.
void single_blas_thread_unless_asked(CLI::App& root);

}  // namespace thinkeys::cli
