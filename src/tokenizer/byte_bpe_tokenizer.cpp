#include "tokenizer/byte_bpe_tokenizer.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <algorithm>
#include <array>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "tokenizer/bpe_merge.h"
#include "tokenizer/file_bytes.h"
#include "tokenizer/special_split.h"
#include "tokenizer/unicode.h"

namespace thinkeys {
namespace {

using nlohmann::json;
namespace fs = std::filesystem;

constexpr std::string_view kGpt2Pattern =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

// Ids are stored in int32 and vocabularies of real models stay far below this;
// the cap turns an absurd id in a corrupt file into an error instead of a huge
// allocation.
constexpr int64_t kMaxVocab = int64_t{1} << 24;

// A compiled pre-tokenizer pattern. split() keeps the text between matches as
// pieces of their own (HF's "Isolated" behaviour), so no byte is ever lost even
// if a custom pattern does not cover the whole input.
class Regex {
 public:
  Regex(std::string_view pattern, bool literal, const std::string& where) {
    int error = 0;
    PCRE2_SIZE offset = 0;
    uint32_t options = PCRE2_UTF | PCRE2_UCP | (literal ? PCRE2_LITERAL : 0);
    code_ = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(), options,
                          &error, &offset, nullptr);
    if (code_ == nullptr) {
      throw Error(where + ": cannot compile pre-tokenizer regex at offset " +
                  std::to_string(offset) + ": " + message(error));
    }
    jit_ = pcre2_jit_compile(code_, PCRE2_JIT_COMPLETE) == 0;
  }
  Regex(const Regex&) = delete;
  Regex& operator=(const Regex&) = delete;
  ~Regex() { pcre2_code_free(code_); }

  // `s` must be valid UTF-8: it is matched with PCRE2_NO_UTF_CHECK because
  // PCRE2's own check rescans the rest of the subject on every call, which is
  // quadratic over a long text.
  void split(std::string_view s, std::vector<std::string_view>& out) const {
    std::unique_ptr<pcre2_match_data, decltype(&pcre2_match_data_free)> data(
        pcre2_match_data_create_from_pattern(code_, nullptr), &pcre2_match_data_free);
    if (!data) throw Error("out of memory creating regex match data");
    const auto subject = reinterpret_cast<PCRE2_SPTR>(s.data());
    std::size_t pos = 0;
    std::size_t emitted = 0;
    while (pos <= s.size()) {
      int rc = PCRE2_ERROR_JIT_STACKLIMIT;
      if (jit_) rc = pcre2_jit_match(code_, subject, s.size(), pos, 0, data.get(), nullptr);
      // The interpreter keeps its backtracking state on the heap, so it copes
      // with inputs (very long whitespace runs) that overflow the JIT stack.
      if (rc == PCRE2_ERROR_JIT_STACKLIMIT) {
        rc = pcre2_match(code_, subject, s.size(), pos, PCRE2_NO_UTF_CHECK, data.get(), nullptr);
      }
      if (rc == PCRE2_ERROR_NOMATCH) break;
      if (rc < 0) throw Error("pre-tokenizer regex failed: " + message(rc));
      const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(data.get());
      const std::size_t start = ov[0], end = ov[1];
      if (start < emitted || end < start) throw Error("pre-tokenizer regex: unsupported \\K");
      if (end == start) {
        // Skip one character so that an empty match cannot stall the loop.
        if (start >= s.size()) break;
        pos = start + std::max<std::size_t>(1, unicode::utf8_sequence_length(s, start));
        continue;
      }
      if (start > emitted) out.push_back(s.substr(emitted, start - emitted));
      out.push_back(s.substr(start, end - start));
      emitted = pos = end;
    }
    if (emitted < s.size()) out.push_back(s.substr(emitted));
  }

 private:
  static std::string message(int code) {
    std::array<PCRE2_UCHAR, 256> buf{};
    pcre2_get_error_message(code, buf.data(), buf.size());
    return reinterpret_cast<const char*>(buf.data());
  }

  pcre2_code* code_ = nullptr;
  bool jit_ = false;
};

// Everything the file formats provide; the tokenizer derives its tables from it.
struct BpeSpec {
  std::string source;  // file name(s) for error messages
  std::string description;
  std::vector<std::optional<std::string>> id_to_token;      // nullopt: unused id
  std::vector<std::pair<std::string, std::string>> merges;  // in rank order
  std::vector<std::pair<std::string, int32_t>> added;       // literal text matched in input
  std::vector<std::pair<std::string, bool>> patterns;       // (pattern, literal), in order
  bool ignore_merges = false;
  std::optional<int32_t> bos, eos;
  TokenizerKind kind = TokenizerKind::TokenizerJson;
  PostProcessor post;
};

class ByteBpeTokenizer final : public Tokenizer {
 public:
  explicit ByteBpeTokenizer(BpeSpec spec)
      : source_(std::move(spec.source)),
        description_(std::move(spec.description)),
        ignore_merges_(spec.ignore_merges),
        bos_(spec.bos),
        eos_(spec.eos),
        kind_(spec.kind),
        post_(std::move(spec.post)),
        added_(spec.added) {
    const auto n = static_cast<int32_t>(spec.id_to_token.size());
    decoded_.resize(n);
    present_.assign(n, false);
    for (int32_t id = 0; id < n; ++id) {
      if (!spec.id_to_token[id]) continue;
      const std::string& token = *spec.id_to_token[id];
      present_[id] = true;
      decoded_[id] = unmap_bytes(token);
      auto [it, inserted] = token_to_id_.emplace(token, id);
      if (!inserted) {
        throw Error(source_ + ": token '" + token + "' has two ids (" + std::to_string(it->second) +
                    " and " + std::to_string(id) + ")");
      }
    }
    for (int b = 0; b < 256; ++b) {
      auto it = token_to_id_.find(unicode::byte_to_unicode()[b]);
      byte_ids_[b] = it == token_to_id_.end() ? -1 : it->second;
    }
    for (std::size_t rank = 0; rank < spec.merges.size(); ++rank) {
      const auto& [a, b] = spec.merges[rank];
      const std::string ab = a + b;
      const int32_t ia = lookup(a), ib = lookup(b), iab = lookup(ab);
      if (ia < 0 || ib < 0 || iab < 0) {
        const std::string& missing = ia < 0 ? a : (ib < 0 ? b : ab);
        throw Error(source_ + ": merge #" + std::to_string(rank + 1) + " '" + a + " " + b +
                    "' refers to '" + missing + "', which is not in the vocabulary");
      }
      // A repeated merge keeps its last rank, as both GPT-2's reference code and
      // HF tokenizers do (they build a dict/map from the list).
      merges_[pair_key(ia, ib)] = {static_cast<double>(rank), iab};
    }
    for (auto& [text, id] : spec.added) {
      if (text.empty()) continue;
      if (id < 0 || id >= n || !present_[id]) {
        throw Error(source_ + ": added token '" + text + "' has invalid id " + std::to_string(id));
      }
      // Added tokens decode to their literal text, not through the byte map.
      decoded_[id] = text;
      specials_[static_cast<unsigned char>(text[0])].emplace_back(text, id);
    }
    for (auto& list : specials_) {
      std::stable_sort(list.begin(), list.end(), [](const auto& x, const auto& y) {
        return x.first.size() > y.first.size();  // longest match wins
      });
    }
    for (const auto& [pattern, literal] : spec.patterns) {
      patterns_.push_back(std::make_unique<Regex>(pattern, literal, source_));
    }
  }

  std::vector<int32_t> encode(std::string_view text) const override {
    std::vector<int32_t> out;
    // Added tokens are cut out first (leftmost, then longest) so that their text
    // is never split by the regex, which is what HF tokenizers does by default.
    split_at_special_tokens(
        text, [this](unsigned char c) -> const auto& { return specials_[c]; },
        [&](std::string_view piece) { encode_ordinary(piece, out); },
        [&](int32_t id) { out.push_back(id); });
    return out;
  }

  std::string decode_next(int32_t /*prev*/, int32_t id) const override {
    if (id < 0 || id >= vocab_size() || !present_[id]) {
      throw Error(source_ + ": cannot decode token id " + std::to_string(id) +
                  " (not in the vocabulary)");
    }
    return decoded_[id];
  }

  int32_t vocab_size() const override { return static_cast<int32_t>(decoded_.size()); }
  std::optional<int32_t> bos_id() const override { return bos_; }
  std::optional<int32_t> eos_id() const override { return eos_; }
  std::string describe() const override { return description_; }
  TokenizerKind kind() const override { return kind_; }
  std::optional<int32_t> token_id(std::string_view token) const override {
    for (const auto& [text, id] : added_) {
      if (text == token) return id;
    }
    // Vocabulary entries are stored in their byte-mapped spelling.
    std::string mapped;
    for (char c : token) mapped += unicode::byte_to_unicode()[static_cast<unsigned char>(c)];
    const int32_t id = lookup(mapped);
    if (id >= 0) return id;
    return std::nullopt;
  }
  std::vector<std::pair<std::string, int32_t>> added_tokens() const override { return added_; }
  PostProcessor post_processor() const override { return post_; }

 private:
  static uint64_t pair_key(int32_t a, int32_t b) {
    return (static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32) | static_cast<uint32_t>(b);
  }

  // Token text -> bytes through the inverse byte map. Characters outside the map
  // (possible only in hand-made vocabularies) are kept as their UTF-8 text.
  static std::string unmap_bytes(std::string_view token) {
    std::string bytes;
    std::size_t pos = 0;
    while (pos < token.size()) {
      const std::size_t len = unicode::utf8_sequence_length(token, pos);
      if (len == 0) {
        bytes += token[pos++];
        continue;
      }
      const int b = unicode::unicode_to_byte(unicode::decode_utf8(token, pos, len));
      if (b >= 0) {
        bytes += static_cast<char>(b);
      } else {
        bytes.append(token.substr(pos, len));
      }
      pos += len;
    }
    return bytes;
  }

  int32_t lookup(const std::string& token) const {
    auto it = token_to_id_.find(token);
    return it == token_to_id_.end() ? -1 : it->second;
  }

  void encode_ordinary(std::string_view text, std::vector<int32_t>& out) const {
    std::vector<std::string_view> words;
    for (const unicode::Utf8Piece& piece : unicode::split_utf8(text)) {
      if (!piece.valid) {
        // PCRE2 cannot look at an invalid byte; as a word of its own it still
        // maps to its byte token.
        words.push_back(piece.bytes);
        continue;
      }
      std::vector<std::string_view> pieces{piece.bytes};
      // Several Split pre-tokenizers in a Sequence each split every piece the
      // previous one produced.
      for (const auto& regex : patterns_) {
        std::vector<std::string_view> finer;
        for (std::string_view p : pieces) regex->split(p, finer);
        pieces = std::move(finer);
      }
      words.insert(words.end(), pieces.begin(), pieces.end());
    }
    for (std::string_view word : words) encode_word(word, out);
  }

  void encode_word(std::string_view word, std::vector<int32_t>& out) const {
    constexpr std::size_t kMaxCachedWord = 64;
    const bool cacheable = word.size() <= kMaxCachedWord;
    if (cacheable) {
      std::lock_guard lock(cache_mutex_);
      if (auto it = cache_.find(std::string(word)); it != cache_.end()) {
        out.insert(out.end(), it->second.begin(), it->second.end());
        return;
      }
    }
    std::vector<int32_t> ids = bpe(word);
    out.insert(out.end(), ids.begin(), ids.end());
    if (cacheable) {
      std::lock_guard lock(cache_mutex_);
      // Bounded so that encoding a huge corpus cannot grow memory without limit.
      if (cache_.size() >= 200000) cache_.clear();
      cache_.emplace(std::string(word), std::move(ids));
    }
  }

  std::vector<int32_t> bpe(std::string_view word) const {
    if (ignore_merges_) {
      std::string mapped;
      for (char c : word) mapped += unicode::byte_to_unicode()[static_cast<unsigned char>(c)];
      if (int32_t id = lookup(mapped); id >= 0) return {id};
    }
    std::vector<int32_t> ids;
    ids.reserve(word.size());
    for (char c : word) {
      const int32_t id = byte_ids_[static_cast<unsigned char>(c)];
      if (id < 0) {
        // Dropping the byte or substituting <unk> would silently change the text.
        throw Error(source_ + ": vocabulary has no token for byte 0x" + hex(c) + " ('" +
                    unicode::byte_to_unicode()[static_cast<unsigned char>(c)] + "')");
      }
      ids.push_back(id);
    }
    detail::merge_pairs(ids, [this](int32_t a, int32_t b) -> std::optional<detail::PairMerge> {
      auto it = merges_.find(pair_key(a, b));
      if (it == merges_.end()) return std::nullopt;
      return it->second;
    });
    return ids;
  }

  static std::string hex(char c) {
    static constexpr char kDigits[] = "0123456789ABCDEF";
    const auto b = static_cast<unsigned char>(c);
    return {kDigits[b >> 4], kDigits[b & 15]};
  }

  std::string source_;
  std::string description_;
  bool ignore_merges_;
  std::optional<int32_t> bos_, eos_;
  TokenizerKind kind_;
  PostProcessor post_;
  std::vector<std::pair<std::string, int32_t>> added_;
  std::vector<std::string> decoded_;  // bytes each id decodes to
  std::vector<bool> present_;
  std::unordered_map<std::string, int32_t> token_to_id_;
  std::array<int32_t, 256> byte_ids_{};
  std::unordered_map<uint64_t, detail::PairMerge> merges_;
  std::array<std::vector<std::pair<std::string, int32_t>>, 256> specials_;  // by first byte
  std::vector<std::unique_ptr<Regex>> patterns_;

  mutable std::mutex cache_mutex_;
  mutable std::unordered_map<std::string, std::vector<int32_t>> cache_;
};

json parse_json(const std::string& bytes, const fs::path& path, std::string_view what) {
  try {
    return json::parse(bytes);
  } catch (const json::exception& e) {
    throw Error(std::string(what) + " '" + path.string() + "' is not valid JSON: " + e.what());
  }
}

// vocab.json maps token text to id; ids may leave gaps but must be unique.
void read_vocab(const json& vocab, BpeSpec& spec) {
  if (!vocab.is_object() || vocab.empty()) {
    throw Error(spec.source + ": vocabulary must be a non-empty JSON object of token -> id");
  }
  int64_t max_id = -1;
  for (const auto& [token, id] : vocab.items()) {
    if (!id.is_number_integer() || id.get<int64_t>() < 0 || id.get<int64_t>() >= kMaxVocab) {
      throw Error(spec.source + ": token '" + token + "' has invalid id " + id.dump());
    }
    max_id = std::max(max_id, id.get<int64_t>());
  }
  spec.id_to_token.resize(static_cast<std::size_t>(max_id + 1));
  for (const auto& [token, id] : vocab.items()) {
    auto& slot = spec.id_to_token[id.get<std::size_t>()];
    if (slot) {
      throw Error(spec.source + ": id " + id.dump() + " is used by both '" + *slot + "' and '" +
                  token + "'");
    }
    slot = token;
  }
}

// "a b" -> (a, b); the split is at the single space, which byte-level tokens
// never contain (a space is mapped to 'Ġ').
std::optional<std::pair<std::string, std::string>> split_merge(std::string_view line) {
  const auto space = line.find(' ');
  if (space == std::string_view::npos || space == 0 || space + 1 == line.size() ||
      line.find(' ', space + 1) != std::string_view::npos) {
    return std::nullopt;
  }
  return std::pair{std::string(line.substr(0, space)), std::string(line.substr(space + 1))};
}

void add_token_if_present(BpeSpec& spec, std::string_view text, std::optional<int32_t>& slot) {
  if (slot) return;
  for (std::size_t id = 0; id < spec.id_to_token.size(); ++id) {
    if (spec.id_to_token[id] && *spec.id_to_token[id] == text) {
      slot = static_cast<int32_t>(id);
      return;
    }
  }
}

// Walks a pre_tokenizer (possibly a Sequence) and records the splitting patterns
// in application order. Anything whose ids we could not reproduce exactly is
// rejected instead of approximated.
void read_pre_tokenizer(const json& pt, BpeSpec& spec, bool& byte_level) {
  if (pt.is_null()) return;
  const std::string type = pt.value("type", "");
  if (type == "Sequence") {
    for (const json& inner : pt.at("pretokenizers")) read_pre_tokenizer(inner, spec, byte_level);
  } else if (type == "ByteLevel") {
    byte_level = true;
    if (pt.value("add_prefix_space", false)) {
      throw UnsupportedTokenizerJson(spec.source +
                                     ": ByteLevel pre-tokenizer with add_prefix_space=true "
                                     "is not supported");
    }
    if (pt.value("use_regex", true)) spec.patterns.emplace_back(kGpt2Pattern, false);
  } else if (type == "Split") {
    const json& pattern = pt.at("pattern");
    if (pt.value("invert", false) || pt.value("behavior", "Isolated") != "Isolated") {
      throw UnsupportedTokenizerJson(spec.source + ": Split pre-tokenizer with behavior '" +
                                     pt.value("behavior", "") +
                                     "'/invert is not supported (only Isolated)");
    }
    if (pattern.contains("Regex")) {
      spec.patterns.emplace_back(pattern.at("Regex").get<std::string>(), false);
    } else if (pattern.contains("String")) {
      spec.patterns.emplace_back(pattern.at("String").get<std::string>(), true);
    } else {
      throw Error(spec.source + ": Split pre-tokenizer without a Regex or String pattern");
    }
  } else {
    throw UnsupportedTokenizerJson(spec.source + ": pre-tokenizer type '" + type +
                                   "' is not supported by the byte-level BPE tokenizer");
  }
}

bool decoder_is_byte_level(const json& decoder, const std::string& source) {
  const std::string type = decoder.value("type", "");
  if (type == "ByteLevel") return true;
  if (type == "Sequence") {
    bool any = false;
    for (const json& inner : decoder.at("decoders")) any |= decoder_is_byte_level(inner, source);
    return any;
  }
  throw UnsupportedTokenizerJson(source + ": decoder type '" + type +
                                 "' is not byte-level (a SentencePiece-style tokenizer.json?)");
}

// Records what the post-processor adds around one sequence. ByteLevel only
// fixes offsets; TemplateProcessing names special tokens around $A; anything
// else would add tokens we do not model, so it is refused.
void read_post_processor(const json& pp, BpeSpec& spec) {
  if (pp.is_null()) return;
  const std::string type = pp.value("type", "");
  if (type == "Sequence") {
    for (const json& inner : pp.at("processors")) read_post_processor(inner, spec);
    return;
  }
  spec.post.present = true;
  auto note = [&](const std::string& what) {
    spec.post.description += (spec.post.description.empty() ? "" : ", ") + what;
  };
  if (type == "ByteLevel") {
    note("ByteLevel (adds no tokens)");
    return;
  }
  if (type != "TemplateProcessing") {
    throw UnsupportedTokenizerJson(spec.source + ": post-processor type '" + type +
                                   "' is not supported (only TemplateProcessing, ByteLevel, "
                                   "Sequence)");
  }
  const json& specials = pp.contains("special_tokens") ? pp.at("special_tokens") : json::object();
  std::string text;
  bool seen_sequence = false;
  for (const json& piece : pp.at("single")) {
    if (piece.contains("Sequence")) {
      if (seen_sequence) throw Error(spec.source + ": post-processor names $A twice");
      seen_sequence = true;
      text += (text.empty() ? "" : " ") + std::string("$A");
      continue;
    }
    if (!piece.contains("SpecialToken")) {
      throw Error(spec.source + ": post-processor piece " + piece.dump() + " is not understood");
    }
    const std::string name = piece.at("SpecialToken").at("id").get<std::string>();
    text += (text.empty() ? "" : " ") + name;
    if (!specials.contains(name)) {
      throw Error(spec.source + ": post-processor token '" + name +
                  "' has no special_tokens entry");
    }
    for (const json& id : specials.at(name).at("ids")) {
      (seen_sequence ? spec.post.after : spec.post.before).push_back(id.get<int32_t>());
    }
  }
  if (!seen_sequence) throw Error(spec.source + ": post-processor template has no $A");
  note("TemplateProcessing " + text);
}

BpeSpec read_tokenizer_json(const json& j, BpeSpec spec) {
  if (!j.is_object() || !j.contains("model")) {
    throw Error(spec.source + ": not a tokenizer.json (no \"model\" object)");
  }
  const json& model = j.at("model");
  const std::string type = model.value("type", "BPE");
  if (type != "BPE") {
    throw UnsupportedTokenizerJson(spec.source + ": model type '" + type +
                                   "' is not supported (only byte-level BPE)");
  }
  if (model.value("byte_fallback", false)) {
    throw UnsupportedTokenizerJson(spec.source +
                                   ": BPE with byte_fallback is SentencePiece-style, not "
                                   "byte-level BPE");
  }
  for (const char* key : {"continuing_subword_prefix", "end_of_word_suffix"}) {
    if (model.contains(key) && !model[key].is_null() && !model[key].get<std::string>().empty()) {
      throw UnsupportedTokenizerJson(spec.source + ": BPE with " + key + " is not supported");
    }
  }
  spec.ignore_merges = model.value("ignore_merges", false);
  read_vocab(model.at("vocab"), spec);
  if (model.contains("merges")) {
    std::size_t index = 0;
    for (const json& m : model.at("merges")) {
      ++index;
      std::optional<std::pair<std::string, std::string>> merge;
      if (m.is_string()) {
        merge = split_merge(m.get<std::string>());
      } else if (m.is_array() && m.size() == 2) {
        merge.emplace(m[0].get<std::string>(), m[1].get<std::string>());
      }
      if (!merge) {
        throw Error(spec.source + ": merge #" + std::to_string(index) + " " + m.dump() +
                    " is not \"a b\" or [\"a\", \"b\"]");
      }
      spec.merges.push_back(std::move(*merge));
    }
  }

  if (j.contains("normalizer") && !j["normalizer"].is_null()) {
    // NFC is accepted: the input is assumed to be NFC already (true of almost
    // all text); other normalizers would change ids and are refused.
    const std::string norm = j["normalizer"].value("type", "");
    if (norm != "NFC") {
      throw UnsupportedTokenizerJson(spec.source + ": normalizer '" + norm + "' is not supported");
    }
  }
  bool byte_level = false;
  const bool has_pre = j.contains("pre_tokenizer") && !j["pre_tokenizer"].is_null();
  const bool has_decoder = j.contains("decoder") && !j["decoder"].is_null();
  if (has_pre) {
    read_pre_tokenizer(j["pre_tokenizer"], spec, byte_level);
  } else {
    // A bare file (only "model") gets GPT-2's pre-tokenizer.
    spec.patterns.emplace_back(kGpt2Pattern, false);
  }
  if (has_decoder) byte_level |= decoder_is_byte_level(j["decoder"], spec.source);
  if ((has_pre || has_decoder) && !byte_level) {
    throw UnsupportedTokenizerJson(spec.source +
                                   ": neither pre_tokenizer nor decoder is ByteLevel; not a "
                                   "byte-level BPE tokenizer");
  }

  if (j.contains("added_tokens")) {
    for (const json& t : j.at("added_tokens")) {
      const int64_t id = t.at("id").get<int64_t>();
      std::string content = t.at("content").get<std::string>();
      if (id < 0 || id >= kMaxVocab) {
        throw Error(spec.source + ": added token '" + content + "' has invalid id " +
                    std::to_string(id));
      }
      if (static_cast<std::size_t>(id) >= spec.id_to_token.size()) {
        spec.id_to_token.resize(static_cast<std::size_t>(id) + 1);
      }
      // An added token usually repeats a vocab entry; otherwise it takes its id.
      auto& slot = spec.id_to_token[static_cast<std::size_t>(id)];
      if (!slot) slot = content;
      spec.added.emplace_back(std::move(content), static_cast<int32_t>(id));
    }
  }
  if (j.contains("post_processor")) read_post_processor(j["post_processor"], spec);
  for (const char* name : {"<|begin_of_text|>", "<s>", "<|endoftext|>"}) {
    for (const auto& [content, id] : spec.added) {
      if (!spec.bos && content == name) spec.bos = id;
    }
  }
  for (const char* name : {"<|end_of_text|>", "</s>", "<|endoftext|>"}) {
    for (const auto& [content, id] : spec.added) {
      if (!spec.eos && content == name) spec.eos = id;
    }
  }
  return spec;
}

}  // namespace

std::unique_ptr<Tokenizer> load_gpt2_bpe(const fs::path& vocab_json, const fs::path& merges_txt) {
  BpeSpec spec;
  spec.source = "'" + vocab_json.string() + "' + '" + merges_txt.string() + "'";
  spec.kind = TokenizerKind::Gpt2Files;
  spec.description = "byte-level BPE (" + vocab_json.filename().string() + " + " +
                     merges_txt.filename().string() + ")";
  const std::string vocab_bytes = detail::read_file_bytes(vocab_json, "BPE vocabulary");
  const std::string merges_bytes = detail::read_file_bytes(merges_txt, "BPE merges file");
  read_vocab(parse_json(vocab_bytes, vocab_json, "BPE vocabulary"), spec);

  std::string_view rest = merges_bytes;
  std::size_t line_no = 0;
  while (!rest.empty()) {
    const auto eol = rest.find('\n');
    std::string_view line = rest.substr(0, eol);
    rest = eol == std::string_view::npos ? std::string_view{} : rest.substr(eol + 1);
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.empty() || (line_no == 1 && line.starts_with("#version"))) continue;
    auto merge = split_merge(line);
    if (!merge) {
      throw Error("BPE merges file '" + merges_txt.string() + "' line " + std::to_string(line_no) +
                  " is not of the form \"a b\"");
    }
    spec.merges.push_back(std::move(*merge));
  }
  spec.patterns.emplace_back(kGpt2Pattern, false);
  add_token_if_present(spec, "<|endoftext|>", spec.bos);
  if (spec.bos) {
    spec.eos = spec.bos;
    spec.added.emplace_back("<|endoftext|>", *spec.bos);
  }
  return std::make_unique<ByteBpeTokenizer>(std::move(spec));
}

std::unique_ptr<Tokenizer> load_tokenizer_json(const fs::path& tokenizer_json) {
  const std::string bytes = detail::read_file_bytes(tokenizer_json, "tokenizer.json");
  const json j = parse_json(bytes, tokenizer_json, "tokenizer.json");
  BpeSpec spec;
  spec.source = "'" + tokenizer_json.string() + "'";
  spec.description = "byte-level BPE (" + tokenizer_json.filename().string() + ")";
  try {
    spec = read_tokenizer_json(j, std::move(spec));
  } catch (const json::exception& e) {
    // Missing keys and wrong JSON types in an otherwise parseable file.
    throw Error("tokenizer.json '" + tokenizer_json.string() + "' is malformed: " + e.what());
  }
  return std::make_unique<ByteBpeTokenizer>(std::move(spec));
}

}  // namespace thinkeys
