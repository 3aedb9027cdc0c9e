#include "checkpoint/model_loader.h"

#include "checkpoint/hf_checkpoint.h"
#include "checkpoint/llama2c_checkpoint.h"
#include "model/weight_format.h"
#include "model/weights.h"
#include "util/atomic_output.h"
#include "util/error.h"

namespace fs = std::filesystem;

namespace thinkeys {

Model load_model(const fs::path& path, std::optional<WeightFormat> weights) {
  if (!fs::exists(path)) throw Error("model not found: " + path.string());
  if (fs::is_directory(path)) return load_hf_checkpoint(path, weights);
  auto name = path.filename().string();
  if (name == "config.json" || path.extension() == ".safetensors" || name.ends_with(".index.json"))
    return load_hf_checkpoint(path.parent_path().empty() ? fs::path(".") : path.parent_path(),
                              weights);
  if (path.extension() == ".bin") {
    if (!looks_like_llama2c_checkpoint(path))
      throw Error(path.string() +
                  ": not a llama2.c checkpoint (PyTorch .bin files are not supported)");
    Model m = load_llama2c_checkpoint(path);
    const WeightFormat want = weights.value_or(WeightFormat::F32);  // llama2.c stores f32
    if (want != WeightFormat::F32) convert_weights(m, want);
    return m;
  }
  throw Error(path.string() +
              ": unrecognised model format (expected a Hugging Face directory "
              "with config.json, or a llama2.c .bin file)");
}

void save_model(const Model& model, const fs::path& dir, DType dtype,
                const fs::path& tokenizer_source) {
  static const char* kTokenizerFiles[] = {"tokenizer.json",  "tokenizer_config.json", "vocab.json",
                                          "merges.txt",      "encoder.json",          "vocab.bpe",
                                          "tokenizer.model", "tokenizer.bin"};
  write_directory_atomically(dir, [&](const fs::path& tmp) {
    write_hf_checkpoint(model, tmp, dtype);
    if (tokenizer_source.empty()) return;
    fs::path src_dir =
        fs::is_directory(tokenizer_source) ? tokenizer_source : tokenizer_source.parent_path();
    if (!fs::is_directory(tokenizer_source) && tokenizer_source.extension() == ".bin" &&
        !looks_like_llama2c_checkpoint(tokenizer_source)) {
      fs::copy_file(tokenizer_source, tmp / "tokenizer.bin");
      return;
    }
    for (const char* f : kTokenizerFiles)
      if (fs::exists(src_dir / f)) fs::copy_file(src_dir / f, tmp / f);
    // llama2.c keeps its tokenizer as tok<vocab>.bin beside the model.
    auto tok = src_dir / ("tok" + std::to_string(model.config.vocab_size) + ".bin");
    if (!fs::exists(tmp / "tokenizer.bin") && fs::exists(tok))
      fs::copy_file(tok, tmp / "tokenizer.bin");
  });
}

}  // namespace thinkeys
