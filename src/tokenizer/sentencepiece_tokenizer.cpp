#include "tokenizer/sentencepiece_tokenizer.h"

#include <array>
#include <string>
#include <string_view>
#include <vector>

#include "tokenizer/file_bytes.h"
#include "tokenizer/sentencepiece_backend.h"
#include "tokenizer/unicode.h"
#include "util/error.h"

namespace thinkeys {
namespace {

namespace fs = std::filesystem;

constexpr std::string_view kMetaSpace = "\xE2\x96\x81";  // U+2581, SentencePiece's space

// Appended to a serialized ModelProto: field 3 (normalizer_spec) holding field 3
// (add_dummy_prefix) = false. Protobuf merges a repeated embedded message into
// the earlier one, so this overrides just that flag and keeps the rest of the
// normalizer (charsmap, whitespace handling) intact.
constexpr std::string_view kNoDummyPrefix("\x1a\x02\x18\x00", 4);

class SentencePieceTokenizer final : public Tokenizer {
 public:
  explicit SentencePieceTokenizer(const fs::path& path)
      : path_(path.string()), sp_(make_sentencepiece_backend()) {
    const std::string bytes = detail::read_file_bytes(path, "SentencePiece model");
    load(*sp_, bytes);
    if (sp_->piece_size() <= 0) throw Error(where() + " has no pieces");

    // add_dummy_prefix is not exposed without the protobuf headers, so probe it:
    // with the prefix, "a" encodes to pieces starting with U+2581.
    dummy_prefix_ = starts_with_meta_space(*sp_, "a");
    if (dummy_prefix_) {
      no_prefix_ = make_sentencepiece_backend();
      load(*no_prefix_, bytes + std::string(kNoDummyPrefix));
      if (starts_with_meta_space(*no_prefix_, "a")) {
        throw Error(where() + ": cannot disable the dummy prefix for mid-text encoding");
      }
    }

    for (int b = 0; b < 256; ++b) {
      static constexpr char kHex[] = "0123456789ABCDEF";
      const std::string piece = std::string("<0x") + kHex[b >> 4] + kHex[b & 15] + ">";
      const int id = sp_->piece_to_id(piece);
      byte_ids_[b] = id >= 0 && sp_->is_byte(id) ? id : -1;
    }

    const int n = sp_->piece_size();
    text_.resize(n);
    is_byte_.assign(n, false);
    for (int id = 0; id < n; ++id) {
      if (sp_->is_control(id)) continue;  // <s>, </s> decode to nothing, as in SentencePiece
      if (sp_->is_unknown(id)) {
        text_[id] = " \xE2\x81\x87 ";  // SentencePiece's rendering of <unk>
        continue;
      }
      const std::string piece = sp_->id_to_piece(id);
      if (sp_->is_byte(id)) {
        is_byte_[id] = true;
        text_[id] = std::string(1, static_cast<char>(std::stoi(piece.substr(3, 2), nullptr, 16)));
        continue;
      }
      std::string& text = text_[id];
      for (std::size_t pos = 0; pos < piece.size();) {
        if (std::string_view(piece).substr(pos).starts_with(kMetaSpace)) {
          text += ' ';
          pos += kMetaSpace.size();
        } else {
          text += piece[pos++];
        }
      }
    }
  }

  // SentencePiece only sees valid UTF-8 without U+2581; invalid bytes and U+2581
  // itself (which it would decode as a space) become byte-fallback tokens, so the
  // round trip is exact. Only the run at the very start of the text is encoded
  // with the dummy prefix; later runs would otherwise gain a space that is not in
  // the text, so they use a processor with add_dummy_prefix switched off. Text
  // without such bytes gives exactly SentencePiece's ids.
  std::vector<int32_t> encode(std::string_view text) const override {
    std::vector<int32_t> out;
    bool at_start = true;
    auto encode_valid = [&](std::string_view run) {
      if (run.empty()) return;
      std::vector<int> ids;
      const auto& sp = at_start || !dummy_prefix_ ? *sp_ : *no_prefix_;
      if (auto err = sp.encode_ids(run, &ids); !err.empty()) {
        throw Error(where() + ": SentencePiece encode failed: " + err);
      }
      out.insert(out.end(), ids.begin(), ids.end());
      at_start = false;
    };
    auto encode_bytes = [&](std::string_view bytes) {
      for (char c : bytes) {
        const int id = byte_ids_[static_cast<unsigned char>(c)];
        if (id < 0) {
          throw Error(where() + " has no byte-fallback pieces, so it cannot encode " +
                      (bytes == kMetaSpace ? std::string("U+2581") : "invalid UTF-8") +
                      " without losing it");
        }
        out.push_back(id);
      }
      at_start = false;
    };
    for (const unicode::Utf8Piece& piece : unicode::split_utf8(text)) {
      if (!piece.valid) {
        encode_bytes(piece.bytes);
        continue;
      }
      std::string_view rest = piece.bytes;
      for (auto pos = rest.find(kMetaSpace); pos != std::string_view::npos;
           pos = rest.find(kMetaSpace)) {
        encode_valid(rest.substr(0, pos));
        encode_bytes(kMetaSpace);
        rest.remove_prefix(pos + kMetaSpace.size());
      }
      encode_valid(rest);
    }
    return out;
  }

  std::string decode_next(int32_t prev, int32_t id) const override {
    if (id < 0 || id >= vocab_size()) {
      throw Error(where() + ": cannot decode token id " + std::to_string(id) + " (vocabulary has " +
                  std::to_string(vocab_size()) + " pieces)");
    }
    const std::string& text = text_[id];
    // The dummy prefix put a space before the first piece; drop it there, and
    // after BOS, which is where a prompt starts.
    const bool text_start = prev < 0 || (bos_id() && prev == *bos_id());
    if (dummy_prefix_ && text_start && !is_byte_[id] && text.starts_with(' ')) {
      return text.substr(1);
    }
    return text;
  }

  int32_t vocab_size() const override { return static_cast<int32_t>(text_.size()); }
  std::optional<int32_t> bos_id() const override { return optional_id(sp_->bos_id()); }
  std::optional<int32_t> eos_id() const override { return optional_id(sp_->eos_id()); }
  TokenizerKind kind() const override { return TokenizerKind::SentencePiece; }
  std::optional<int32_t> token_id(std::string_view token) const override {
    // piece_to_id answers <unk>'s id for unknown pieces, so check the way back.
    const int id = sp_->piece_to_id(token);
    if (id < 0 || id >= vocab_size() || sp_->id_to_piece(id) != token) return std::nullopt;
    return id;
  }
  std::vector<std::pair<std::string, int32_t>> added_tokens() const override {
    std::vector<std::pair<std::string, int32_t>> out;
    for (int id = 0; id < vocab_size(); ++id) {
      if (sp_->is_control(id) || sp_->is_unknown(id)) out.emplace_back(sp_->id_to_piece(id), id);
    }
    return out;
  }
  std::string describe() const override {
    return "SentencePiece (" + fs::path(path_).filename().string() + ")";
  }

 private:
  std::string where() const { return "SentencePiece model '" + path_ + "'"; }

  void load(SentencePieceBackend& sp, const std::string& bytes) const {
    if (auto err = sp.load_serialized(bytes); !err.empty()) {
      throw Error(where() + " cannot be loaded (corrupt or not a SentencePiece model): " + err);
    }
  }

  static bool starts_with_meta_space(const SentencePieceBackend& sp, std::string_view text) {
    std::vector<std::string> pieces;
    return sp.encode_pieces(text, &pieces).empty() && !pieces.empty() &&
           std::string_view(pieces.front()).starts_with(kMetaSpace);
  }

  std::optional<int32_t> optional_id(int id) const {
    if (id < 0 || id >= vocab_size()) return std::nullopt;
    return id;
  }

  std::string path_;
  std::unique_ptr<SentencePieceBackend> sp_;
  std::unique_ptr<SentencePieceBackend> no_prefix_;  // loaded only with a dummy prefix
  bool dummy_prefix_ = false;
  std::array<int, 256> byte_ids_{};  // -1 where the model has no <0xXX> piece
  std::vector<std::string> text_;    // decoded bytes of each piece
  std::vector<bool> is_byte_;
};

}  // namespace

std::unique_ptr<Tokenizer> load_sentencepiece(const fs::path& model_file) {
  return std::make_unique<SentencePieceTokenizer>(model_file);
}

}  // namespace thinkeys
