#include "cli/common.h"

#include <CLI/CLI.hpp>
#include <cstdio>

#include "checkpoint/model_loader.h"
#include "io/hf_config.h"
#include "model/engine_threads.h"
#include "model/weights.h"
#include "util/error.h"

namespace thinkeys::cli {

std::unique_ptr<Tokenizer> tokenizer_for(const std::string& model_path,
                                         const std::string& tokenizer_path, const Model& model) {
  return load_tokenizer(tokenizer_path.empty() ? model_path : tokenizer_path,
                        model.config.vocab_size);
}

ModelTokenizer model_tokenizer(const std::string& model_path, const std::string& tokenizer_path,
                               const Model* model) {
  namespace fs = std::filesystem;
  std::optional<int32_t> vocab;
  if (model) {
    vocab = model->config.vocab_size;
  } else {
    std::error_code ec;
    const fs::path dir = fs::is_directory(model_path, ec) ? fs::path(model_path)
                                                          : fs::path(model_path).parent_path();
    if (fs::is_regular_file(dir / "config.json", ec)) {
      vocab = read_hf_config(dir / "config.json").vocab_size;
    } else if (!fs::is_directory(model_path, ec)) {
      vocab = load_model(model_path).config.vocab_size;  // llama2.c: the header has it
      // (a directory without config.json holds only a tokenizer)
    }
  }
  ModelTokenizer mt;
  mt.tokenizer = load_tokenizer(tokenizer_path.empty() ? model_path : tokenizer_path, vocab);
  mt.conventions = load_tokenizer_conventions(model_path, *mt.tokenizer, tokenizer_path);
  return mt;
}

std::vector<int32_t> bos_prefix(const Model& model, const ModelTokenizer& mt, bool text_empty,
                                int bos_mode) {
  const auto bos = mt.conventions.bos_id ? mt.conventions.bos_id : model.config.bos_id;
  const bool want = bos_mode == 1 || (bos_mode == -1 && (mt.conventions.add_bos || text_empty));
  if (!want) return {};
  if (!bos) throw Error("the model defines no BOS token; pass a non-empty prompt");
  return {*bos};
}

std::vector<int32_t> prompt_tokens(const Model& model, const ModelTokenizer& mt,
                                   const std::string& text, int bos_mode) {
  std::vector<int32_t> ids = bos_prefix(model, mt, text.empty(), bos_mode);
  auto body = mt.conventions.encode(*mt.tokenizer, text, false);
  ids.insert(ids.end(), body.begin(), body.end());
  return ids;
}

void add_weights_option(CLI::App* sub, std::string& weights) {
  sub->add_option("--weights", weights,
                  "Hold the projection, MLP and head weights as: stored (the checkpoint's dtype), "
                  "f32, bf16, f16, int8 (symmetric, one scale per 64 weights of a row) or int4 "
                  "(one scale per 32)")
      ->check(CLI::IsMember({"stored", "f32", "bf16", "f16", "int8", "int4"}));
}

std::optional<WeightFormat> weights_choice(const std::string& weights) {
  if (weights == "stored") return std::nullopt;
  return parse_weight_format(weights);
}

std::string human_bytes(double b) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  int u = 0;
  while (b >= 1024.0 && u < 4) {
    b /= 1024.0;
    ++u;
  }
  char buf[32];
  std::snprintf(buf, sizeof buf, u == 0 ? "%.0f %s" : "%.2f %s", b, units[u]);
  return buf;
}

void single_blas_thread_unless_asked(CLI::App& root) {
  if (root.get_option("--threads")->count() == 0) configure_threads(1);
}

}  // namespace thinkeys::cli
