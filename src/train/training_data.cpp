#include "train/training_data.h"

#include "util/error.h"

namespace fs = std::filesystem;

namespace thinkeys {

TextData load_text_data(const fs::path& data, const fs::path& valid, const Tokenizer& tok,
                        const std::string& fingerprint, const TokenizeOptions& options,
                        int64_t max_train_tokens) {
  DataFiles files = find_data_files(data);
  if (!valid.empty()) {
    if (!fs::is_regular_file(valid))
      throw Error("validation file " + valid.string() + " not found");
    files.valid = {valid};
  }
  TextData d;
  for (const auto& f : files.train) {
    if (max_train_tokens > 0 && static_cast<int64_t>(d.train.size()) >= max_train_tokens) break;
    auto ids = tokenize_file_cached(f, tok, fingerprint, options);
    d.train.insert(d.train.end(), ids.begin(), ids.end());
    d.train_files.push_back(f);
  }
  if (max_train_tokens > 0 && static_cast<int64_t>(d.train.size()) > max_train_tokens)
    d.train.resize(static_cast<size_t>(max_train_tokens));
  for (const auto& f : files.valid) {
    auto ids = tokenize_file_cached(f, tok, fingerprint, options);
    d.valid.insert(d.valid.end(), ids.begin(), ids.end());
    d.valid_files.push_back(f);
  }
  if (d.train.empty()) throw Error("training data " + data.string() + " holds no tokens");
  if (d.valid.empty()) {
    // No validation file: score the last 1% of the training stream instead,
    // and do not train on it.
    size_t hold = d.train.size() / 100;
    if (hold > 1) {
      d.valid.assign(d.train.end() - static_cast<std::ptrdiff_t>(hold), d.train.end());
      d.train.resize(d.train.size() - hold);
      d.valid_held_out = true;
    }
  }
  return d;
}

}  // namespace thinkeys
