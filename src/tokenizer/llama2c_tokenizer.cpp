#include "tokenizer/llama2c_tokenizer.h"

#include <algorithm>
#include <cstring>
#include <fstream>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "tokenizer/bpe_merge.h"
#include "tokenizer/file_bytes.h"
#include "tokenizer/unicode.h"
#include "util/error.h"

namespace thinkeys {
namespace {

namespace fs = std::filesystem;

// Fixed by llama2.c: ids 0-2 are <unk>, <s>, </s>; byte b is token b + 3.
constexpr int32_t kBos = 1;
constexpr int32_t kEos = 2;
constexpr int32_t kFirstByte = 3;
constexpr int32_t kMinVocab = kFirstByte + 256;
// Longest plausible piece; a larger header is a checkpoint or garbage.
constexpr int32_t kMaxTokenLength = 1 << 16;

std::string byte_piece(int b) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  return std::string("<0x") + kHex[b >> 4] + kHex[b & 15] + ">";
}

// Bounds-checked little cursor over the file bytes (the format is native-endian
// raw fwrite output; llama2.c only targets little-endian machines).
class Reader {
 public:
  explicit Reader(std::string_view bytes) : bytes_(bytes) {}
  bool has(std::size_t n) const { return bytes_.size() - pos_ >= n; }
  bool at_end() const { return pos_ == bytes_.size(); }
  std::size_t pos() const { return pos_; }
  template <typename T>
  T read() {
    T value;
    std::memcpy(&value, bytes_.data() + pos_, sizeof(T));
    pos_ += sizeof(T);
    return value;
  }
  std::string_view take(std::size_t n) {
    auto s = bytes_.substr(pos_, n);
    pos_ += n;
    return s;
  }

 private:
  std::string_view bytes_;
  std::size_t pos_ = 0;
};

class Llama2cTokenizer final : public Tokenizer {
 public:
  Llama2cTokenizer(const fs::path& path, std::optional<int32_t> vocab_size) : path_(path.string()) {
    const std::string bytes = detail::read_file_bytes(path, "llama2.c tokenizer");
    parse(bytes, vocab_size);
    for (int32_t id = 0; id < static_cast<int32_t>(pieces_.size()); ++id) {
      // On duplicate texts keep the lowest id; run.c's bsearch leaves it
      // unspecified, and real exports have none.
      piece_to_id_.emplace(pieces_[id], id);
    }
    if (auto it = piece_to_id_.find(" "); it != piece_to_id_.end()) dummy_prefix_ = it->second;
  }

  // run.c's encode() without BOS/EOS: a dummy-prefix " " token, then one token
  // per UTF-8 character (its bytes as byte tokens when the character is not a
  // piece), then repeatedly merge the adjacent pair whose concatenation is a
  // piece with the highest score, leftmost first. Two deliberate differences,
  // both only for input run.c mishandles: characters are grouped by strict UTF-8
  // validation (run.c glues any stray continuation bytes onto the previous
  // character; either way they end up as byte tokens), and merges never produce
  // ids 0-258, whose texts ("<0x41>", "<unk>") are spellings rather than the
  // text they stand for.
  std::vector<int32_t> encode(std::string_view text) const override {
    std::vector<int32_t> ids;
    if (text.empty()) return ids;
    ids.reserve(text.size() + 1);
    if (dummy_prefix_) ids.push_back(*dummy_prefix_);
    std::size_t pos = 0;
    while (pos < text.size()) {
      const std::size_t len = std::max<std::size_t>(1, unicode::utf8_sequence_length(text, pos));
      const std::string_view ch = text.substr(pos, len);
      if (auto it = piece_to_id_.find(std::string(ch)); it != piece_to_id_.end()) {
        ids.push_back(it->second);
      } else {
        for (char c : ch) ids.push_back(kFirstByte + static_cast<unsigned char>(c));
      }
      pos += len;
    }
    std::string concat;
    detail::merge_pairs(ids, [&](int32_t a, int32_t b) -> std::optional<detail::PairMerge> {
      concat.assign(pieces_[a]);
      concat += pieces_[b];
      auto it = piece_to_id_.find(concat);
      if (it == piece_to_id_.end() || it->second < kMinVocab) return std::nullopt;
      const float score = scores_[it->second];
      // run.c starts its search at best_score = -1e10 and needs a strictly
      // larger score, so pieces at or below that (or NaN) never merge.
      if (!(score > -1e10f)) return std::nullopt;
      return detail::PairMerge{-static_cast<double>(score), it->second};
    });
    return ids;
  }

  std::string decode_next(int32_t prev, int32_t id) const override {
    if (id < 0 || id >= vocab_size()) {
      throw Error("llama2.c tokenizer '" + path_ + "': cannot decode token id " +
                  std::to_string(id) + " (vocabulary has " + std::to_string(vocab_size()) +
                  " tokens)");
    }
    // The export stores <s> and </s> as "\n<s>\n" and "\n</s>\n"; like
    // SentencePiece, treat them as markers that contribute no text.
    if (id == kBos || id == kEos) return {};
    if (id >= kFirstByte && id < kMinVocab)
      return std::string(1, static_cast<char>(id - kFirstByte));
    const std::string& piece = pieces_[id];
    // run.c strips the space after BOS; at the start of a text it is the dummy prefix.
    const bool strip = prev == kBos || (prev < 0 && dummy_prefix_);
    if (strip && piece.starts_with(' ')) return piece.substr(1);
    return piece;
  }

  int32_t vocab_size() const override { return static_cast<int32_t>(pieces_.size()); }
  std::optional<int32_t> bos_id() const override { return kBos; }
  std::optional<int32_t> eos_id() const override { return kEos; }
  TokenizerKind kind() const override { return TokenizerKind::Llama2c; }
  // The export spells <s> and </s> as "\n<s>\n" and "\n</s>\n"; they are
  // known by their usual names.
  std::optional<int32_t> token_id(std::string_view token) const override {
    if (token == "<s>") return kBos;
    if (token == "</s>") return kEos;
    if (token == "<unk>") return 0;
    auto it = piece_to_id_.find(std::string(token));
    if (it == piece_to_id_.end()) return std::nullopt;
    return it->second;
  }
  std::vector<std::pair<std::string, int32_t>> added_tokens() const override {
    return {{"<unk>", 0}, {"<s>", kBos}, {"</s>", kEos}};
  }
  std::string describe() const override {
    return "llama2.c tokenizer (" + fs::path(path_).filename().string() + ")";
  }

 private:
  void parse(std::string_view bytes, std::optional<int32_t> vocab_size) {
    const std::string where = "llama2.c tokenizer '" + path_ + "'";
    if (vocab_size && *vocab_size < kMinVocab) {
      throw Error(where + ": vocabulary size " + std::to_string(*vocab_size) +
                  " is too small (llama2.c needs <unk>, <s>, </s> and 256 byte tokens)");
    }
    Reader in(bytes);
    if (!in.has(4)) throw Error(where + " is truncated: no header");
    max_token_length_ = in.read<int32_t>();
    if (max_token_length_ <= 0 || max_token_length_ > kMaxTokenLength) {
      throw Error(where + ": max_token_length " + std::to_string(max_token_length_) +
                  " is implausible (not a tokenizer.bin?)");
    }
    while (vocab_size ? pieces_.size() < static_cast<std::size_t>(*vocab_size) : !in.at_end()) {
      const std::string token = "token " + std::to_string(pieces_.size());
      if (!in.has(8)) {
        throw Error(where + " is truncated in " + token +
                    (vocab_size ? " (expected " + std::to_string(*vocab_size) + " tokens)" : ""));
      }
      const auto score = in.read<float>();
      const auto len = in.read<int32_t>();
      if (len < 0 || len > max_token_length_) {
        throw Error(where + ": " + token + " has length " + std::to_string(len) + " outside 0.." +
                    std::to_string(max_token_length_) + " (corrupt file?)");
      }
      if (!in.has(static_cast<std::size_t>(len))) throw Error(where + " is truncated in " + token);
      scores_.push_back(score);
      pieces_.emplace_back(in.take(static_cast<std::size_t>(len)));
    }
    if (!in.at_end()) {
      throw Error(where + " has data after its " + std::to_string(*vocab_size) +
                  " tokens: its vocabulary is larger than the model's");
    }
    if (pieces_.size() < static_cast<std::size_t>(kMinVocab)) {
      throw Error(where + " has only " + std::to_string(pieces_.size()) +
                  " tokens; llama2.c needs at least " + std::to_string(kMinVocab));
    }
    for (int b = 0; b < 256; ++b) {
      if (pieces_[kFirstByte + b] != byte_piece(b)) {
        throw Error(where + ": token " + std::to_string(kFirstByte + b) + " is not " +
                    byte_piece(b) + " (llama2.c requires byte tokens at ids 3..258)");
      }
    }
  }

  std::string path_;
  int32_t max_token_length_ = 0;
  std::vector<std::string> pieces_;
  std::vector<float> scores_;
  std::unordered_map<std::string, int32_t> piece_to_id_;
  std::optional<int32_t> dummy_prefix_;
};

}  // namespace

std::unique_ptr<Tokenizer> load_llama2c_tokenizer(const fs::path& file,
                                                  std::optional<int32_t> vocab_size) {
  return std::make_unique<Llama2cTokenizer>(file, vocab_size);
}

bool looks_like_llama2c_tokenizer(const fs::path& file) {
  std::ifstream in(file, std::ios::binary);
  if (!in) return false;
  auto read_i32 = [&](int32_t& v) {
    return static_cast<bool>(in.read(reinterpret_cast<char*>(&v), 4));
  };
  int32_t max_len = 0;
  if (!read_i32(max_len) || max_len <= 0 || max_len > kMaxTokenLength) return false;
  std::string piece;
  for (int id = 0; id < kMinVocab; ++id) {
    int32_t score_bits = 0, len = 0;
    if (!read_i32(score_bits) || !read_i32(len) || len < 0 || len > max_len) return false;
    piece.resize(static_cast<std::size_t>(len));
    if (!in.read(piece.data(), len)) return false;
    if (id >= kFirstByte && piece != byte_piece(id - kFirstByte)) return false;
  }
  return true;
}

}  // namespace thinkeys
