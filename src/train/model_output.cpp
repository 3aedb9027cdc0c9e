#include "train/model_output.h"

#include <random>

#include "io/hf_checkpoint.h"
#include "train/token_cache.h"
#include "util/error.h"

namespace fs = std::filesystem;

namespace thinkeys {

void save_trained_model(const Model& model, const fs::path& out, const fs::path& tokenizer_source,
                        DType dtype) {
  std::error_code ec;
  if (fs::exists(out, ec)) {
    if (!fs::is_directory(out)) throw Error(out.string() + " exists and is not a directory");
    bool ours = fs::exists(out / "config.json") || fs::exists(out / "train_log.jsonl") ||
                fs::exists(out / "checkpoint");
    if (!ours && !fs::is_empty(out))
      throw Error("refusing to write a model into " + out.string() +
                  ": it is not empty and holds no model or training run");
  }
  fs::create_directories(out);
  std::random_device rd;
  const fs::path tmp = out / (".model-tmp-" + std::to_string(rd()));
  fs::create_directories(tmp);
  try {
    write_hf_checkpoint(model, tmp, dtype);
    std::vector<fs::path> tok_files;
    if (!tokenizer_source.empty()) {
      if (fs::is_directory(tokenizer_source)) {
        for (const auto& e : fs::directory_iterator(tokenizer_source))
          if (e.is_regular_file() && is_tokenizer_file(e.path())) tok_files.push_back(e.path());
      } else if (fs::is_regular_file(tokenizer_source)) {
        tok_files.push_back(tokenizer_source);
        // encoder.json needs vocab.bpe beside it (and vice versa).
        for (const char* pair : {"encoder.json", "vocab.bpe", "merges.txt", "vocab.json"}) {
          fs::path sib = tokenizer_source.parent_path() / pair;
          if (sib != tokenizer_source && fs::is_regular_file(sib)) tok_files.push_back(sib);
        }
      }
    }
    for (const auto& f : tok_files)
      if (fs::weakly_canonical(f.parent_path()) != fs::weakly_canonical(out))
        fs::copy_file(f, tmp / f.filename(), fs::copy_options::overwrite_existing);
    for (const auto& e : fs::directory_iterator(tmp))
      fs::rename(e.path(), out / e.path().filename());
    fs::remove_all(tmp);
  } catch (const fs::filesystem_error& e) {
    fs::remove_all(tmp, ec);
    throw Error("writing model to " + out.string() + ": " + e.what());
  } catch (...) {
    fs::remove_all(tmp, ec);
    throw;
  }
}

}  // namespace thinkeys
