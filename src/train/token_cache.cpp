#include "train/token_cache.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <optional>
#include <string_view>
#include <thread>

#include "util/atomic_output.h"
#include "util/error.h"
#include "util/progress.h"
#include "util/text_file.h"

namespace fs = std::filesystem;

namespace thinkeys {
namespace {

constexpr char kMagic[8] = {'T', 'K', 'T', 'O', 'K', 'v', '1', '\n'};
constexpr size_t kPieceBytes = 1 << 20;

uint64_t fnv1a(std::string_view s, uint64_t h = 0xcbf29ce484222325ull) {
  for (unsigned char c : s) h = (h ^ c) * 0x100000001b3ull;
  return h;
}

std::string file_stamp(const fs::path& p) {
  std::error_code ec;
  auto size = fs::file_size(p, ec);
  auto mtime = fs::last_write_time(p, ec).time_since_epoch().count();
  return fs::weakly_canonical(p).string() + "|" + std::to_string(size) + "|" +
         std::to_string(mtime);
}

std::string hex(uint64_t v) {
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(v));
  return buf;
}

// Cut points after blank lines, about every kPieceBytes: a function of the
// text only, so the ids do not depend on the number of threads.
std::vector<size_t> piece_ends(const std::string& text) {
  std::vector<size_t> ends;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t target = pos + kPieceBytes;
    if (target >= text.size()) break;
    size_t cut = text.find("\n\n", target);
    if (cut == std::string::npos) break;
    pos = cut + 2;
    ends.push_back(pos);
  }
  ends.push_back(text.size());
  return ends;
}

bool read_cache(const fs::path& p, std::vector<int32_t>& out) {
  std::ifstream in(p, std::ios::binary);
  if (!in) return false;
  char magic[8];
  uint64_t n = 0;
  in.read(magic, 8);
  in.read(reinterpret_cast<char*>(&n), sizeof n);
  if (!in || std::memcmp(magic, kMagic, 8) != 0) return false;
  std::error_code ec;
  if (fs::file_size(p, ec) != 16 + n * sizeof(int32_t)) return false;
  out.resize(n);
  in.read(reinterpret_cast<char*>(out.data()), static_cast<std::streamsize>(n * sizeof(int32_t)));
  return static_cast<bool>(in);
}

}  // namespace

bool is_tokenizer_file(const fs::path& p) {
  static const char* names[] = {"tokenizer.json",
                                "vocab.json",
                                "merges.txt",
                                "encoder.json",
                                "vocab.bpe",
                                "tokenizer.model",
                                "tokenizer.bin",
                                "tokenizer_config.json",
                                "special_tokens_map.json"};
  const std::string n = p.filename().string();
  for (const char* x : names)
    if (n == x) return true;
  return n.rfind("tok", 0) == 0 && p.extension() == ".bin";
}

fs::path default_cache_dir() {
  if (const char* d = std::getenv("THINKEYS_CACHE_DIR"); d && *d) return d;
  if (const char* d = std::getenv("XDG_CACHE_HOME"); d && *d) return fs::path(d) / "thinkeys";
  if (const char* h = std::getenv("HOME"); h && *h) return fs::path(h) / ".cache" / "thinkeys";
  return fs::temp_directory_path() / "thinkeys-cache";
}

std::string tokenizer_fingerprint(const Tokenizer& tok, const fs::path& loaded_from) {
  std::string s = tok.describe() + "|" + std::to_string(tok.vocab_size());
  std::error_code ec;
  if (fs::is_directory(loaded_from, ec)) {
    std::vector<fs::path> files;
    for (const auto& e : fs::directory_iterator(loaded_from, ec))
      if (e.is_regular_file() && is_tokenizer_file(e.path())) files.push_back(e.path());
    std::sort(files.begin(), files.end());
    for (const auto& f : files) s += "|" + file_stamp(f);
  } else {
    s += "|" + file_stamp(loaded_from);
  }
  return s;
}

std::vector<int32_t> tokenize_file_cached(const fs::path& text_file, const Tokenizer& tok,
                                          const std::string& fingerprint,
                                          const TokenizeOptions& o) {
  if (!fs::is_regular_file(text_file))
    throw Error("data file " + text_file.string() + " not found");
  const fs::path dir = (o.cache_dir.empty() ? default_cache_dir() : o.cache_dir) / "tokens";
  const std::string key =
      fingerprint + "#" + file_stamp(text_file) + "#eos=" + std::to_string(o.append_eos);
  const fs::path cache = dir / (text_file.stem().string() + "-" + hex(fnv1a(key)) + ".tok");
  std::vector<int32_t> ids;
  if (read_cache(cache, ids)) return ids;

  const std::string text = read_file_bytes(text_file);
  const auto ends = piece_ends(text);
  std::vector<std::vector<int32_t>> pieces(ends.size());
  std::optional<Progress> progress;
  if (o.show_progress)
    progress.emplace("tokenize " + text_file.filename().string(), static_cast<int64_t>(text.size()),
                     "B");
  const size_t threads = static_cast<size_t>(std::max(1, o.threads));
  for (size_t first = 0; first < ends.size(); first += threads) {
    const size_t last = std::min(ends.size(), first + threads);
    std::vector<std::thread> pool;
    std::vector<std::string> errors(last - first);
    for (size_t i = first; i < last; ++i)
      pool.emplace_back([&, i] {
        const size_t begin = i == 0 ? 0 : ends[i - 1];
        try {
          pieces[i] = tok.encode(std::string_view(text).substr(begin, ends[i] - begin));
        } catch (const std::exception& e) {
          errors[i - first] = e.what();
        }
      });
    for (auto& t : pool) t.join();
    for (const auto& e : errors)
      if (!e.empty()) throw Error("tokenizing " + text_file.string() + ": " + e);
    if (progress)
      progress->advance(static_cast<int64_t>(ends[last - 1] - (first == 0 ? 0 : ends[first - 1])));
  }
  if (progress) progress->finish();
  for (const auto& p : pieces) ids.insert(ids.end(), p.begin(), p.end());
  if (o.append_eos && tok.eos_id()) ids.push_back(*tok.eos_id());

  std::error_code ec;
  fs::create_directories(dir, ec);
  if (!ec) {
    try {
      write_file_atomically(cache, [&](const fs::path& tmp) {
        std::ofstream out(tmp, std::ios::binary);
        uint64_t n = ids.size();
        out.write(kMagic, 8);
        out.write(reinterpret_cast<const char*>(&n), sizeof n);
        out.write(reinterpret_cast<const char*>(ids.data()),
                  static_cast<std::streamsize>(n * sizeof(int32_t)));
        if (!out) throw Error("write failed");
      });
    } catch (const Error&) {
      // A read-only cache only costs time on the next run; the ids are fine.
    }
  }
  return ids;
}

DataFiles find_data_files(const fs::path& data) {
  DataFiles f;
  std::error_code ec;
  if (fs::is_regular_file(data, ec)) {
    f.train.push_back(data);
    return f;
  }
  if (!fs::is_directory(data, ec))
    throw Error("training data " + data.string() +
                " not found (expected a text file or a directory of .txt shards)");
  std::vector<fs::path> txt;
  for (const auto& e : fs::directory_iterator(data, ec))
    if (e.is_regular_file() && e.path().extension() == ".txt") txt.push_back(e.path());
  std::sort(txt.begin(), txt.end());
  for (const auto& p : txt) {
    const std::string name = p.filename().string();
    const auto has = [&](std::string_view part) { return name.find(part) != std::string::npos; };
    // Held-out test text sits beside the training shards (gutenberg/test.txt);
    // a model that trains on it makes every figure reported on it meaningless,
    // so a directory never contributes it, to training or to validation.
    if (name.rfind("test", 0) == 0 || has(".test") || has("_test") || has("-test")) continue;
    bool valid = name.rfind("valid", 0) == 0 || name.rfind("val.", 0) == 0 ||
                 name.rfind("val_", 0) == 0 || has("valid");
    (valid ? f.valid : f.train).push_back(p);
  }
  if (f.train.empty()) throw Error("no training .txt files in " + data.string());
  return f;
}

}  // namespace thinkeys
