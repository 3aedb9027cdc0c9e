#include "train/model_output.h"

#include "checkpoint/hf_checkpoint.h"
#include "train/token_cache.h"
#include "util/atomic_output.h"
#include "util/error.h"

namespace fs = std::filesystem;

namespace thinkeys {
namespace {

// Temporaries of interrupted writes: `.NAME.tmp-*` (util/atomic_output) and
// the `.model-tmp-*` directories earlier versions wrote inside `out`.
bool is_temporary(const std::string& name) {
  return name.starts_with(".model-tmp-") ||
         (name.starts_with(".") && name.find(".tmp-") != std::string::npos);
}

// Links every entry of `from` that `to` does not already hold into `to`
// (directories recreated, files hard-linked, or copied where links fail).
void carry_over(const fs::path& from, const fs::path& to) {
  for (const auto& e : fs::directory_iterator(from)) {
    const std::string name = e.path().filename().string();
    const fs::path dst = to / name;
    if (is_temporary(name) || fs::exists(fs::symlink_status(dst))) continue;
    if (e.is_symlink()) {
      fs::copy_symlink(e.path(), dst);
    } else if (e.is_directory()) {
      fs::create_directory(dst);
      carry_over(e.path(), dst);
    } else {
      std::error_code ec;
      fs::create_hard_link(e.path(), dst, ec);
      if (ec) fs::copy_file(e.path(), dst);
    }
  }
}

}  // namespace

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
  // The whole directory is replaced in one step: a kill at any moment leaves
  // either the previous model or the new one, never a mix of their files.
  // Whatever else `out` holds (train_log.jsonl, checkpoint/, tokenizer files
  // already there) moves along as hard links, so nothing is copied.
  try {
    replace_directory_atomically(out, [&](const fs::path& tmp) {
      write_hf_checkpoint(model, tmp, dtype);
      for (const auto& f : tok_files)
        if (!fs::exists(out) || fs::weakly_canonical(f.parent_path()) != fs::weakly_canonical(out))
          fs::copy_file(f, tmp / f.filename(), fs::copy_options::overwrite_existing);
      if (fs::is_directory(out)) carry_over(out, tmp);
    });
  } catch (const fs::filesystem_error& e) {
    throw Error("writing model to " + out.string() + ": " + e.what());
  }
}

}  // namespace thinkeys
