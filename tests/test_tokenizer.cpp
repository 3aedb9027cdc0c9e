// Tokenizer tests. Expected ids come from public documentation, from the
// vocabulary files themselves, or from libsentencepiece as an independent
// reference; never from this code's own recorded output.
#define PCRE2_CODE_UNIT_WIDTH 8
#include <gtest/gtest.h>
#include <pcre2.h>
#include <sentencepiece_processor.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "test_support.h"
#include "tokenizer/byte_bpe_tokenizer.h"
#include "tokenizer/sentencepiece_backend.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/unicode.h"
#include "util/error.h"

namespace thinkeys {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using Ids = std::vector<int32_t>;

// The SentencePiece tokenizer runs libsentencepiece in a dlopen'ed module that
// sanitizer builds cannot load (see tokenizer/sentencepiece_backend.h), so there
// its tests are skipped. libsentencepiece linked into this test as the reference
// works everywhere.
constexpr bool kSentencePieceTokenizer = !kAddressSanitizerBuild;
constexpr const char* kNoSentencePiece =
    "the SentencePiece module is not available in sanitizer builds";

std::optional<fs::path> shared_dir() {
  if (const char* env = std::getenv("THINKEYS_SHARED"); env && *env) {
    if (fs::is_directory(fs::path(env) / "models")) return fs::path(env);
  }
  for (const char* rel : {"../shared", "../../shared", "../../../shared"}) {
    const fs::path p = fs::current_path() / rel;
    if (fs::is_directory(p / "models")) return fs::weakly_canonical(p);
  }
  return std::nullopt;
}

#define REQUIRE_SHARED(var)                               \
  const std::optional<fs::path> var##_opt = shared_dir(); \
  if (!var##_opt) THINKEYS_MISSING_SHARED("models/");     \
  const fs::path var = *var##_opt

std::string read_file(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void write_file(const fs::path& p, std::string_view bytes) {
  std::ofstream out(p, std::ios::binary);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

// A fresh directory under the system temp dir, removed with everything in it.
class TempDir {
 public:
  TempDir() {
    static int counter = 0;
    path_ = fs::temp_directory_path() / ("thinkeys_tokenizer_test_" + std::to_string(::getpid()) +
                                         "_" + std::to_string(counter++));
    fs::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  const fs::path& path() const { return path_; }
  fs::path operator/(const std::string& name) const { return path_ / name; }

 private:
  fs::path path_;
};

// Texts every tokenizer must round-trip exactly.
const std::vector<std::string>& round_trip_texts() {
  static const std::vector<std::string> texts = {
      "",
      "Hello world",
      "The quick brown fox jumps over the lazy dog.",
      " leading space",
      "trailing space ",
      "café crème brûlée",
      "\xE6\x97\xA5\xE6\x9C\xAC\xE8\xAA\x9E",  // 日本語
      "smile \xF0\x9F\x99\x82!",               // 🙂
      "tabs\tand  double  spaces\n\nnew\r\nlines   \n",
      "    indented\n\tcode();\n",
      "\xFF",
      "a\200b",    // a stray continuation byte (octal 200 = 0x80)
      "\xE6\x97",  // truncated 日
      "\xE6\x97 then text",
      "x\xE2\x96\x81y",  // U+2581, SentencePiece's space
      std::string("nul\0byte", 8),
      "I'm sure they'll say it's 12345 o'clock, isn't it?",
  };
  return texts;
}

void expect_round_trips(const Tokenizer& tok) {
  for (const std::string& text : round_trip_texts()) {
    const Ids ids = tok.encode(text);
    EXPECT_EQ(tok.decode(ids), text) << tok.describe() << " on \"" << text << "\"";
    for (int32_t id : ids) {
      EXPECT_TRUE(id >= 0 && id < tok.vocab_size()) << tok.describe() << " id " << id;
    }
  }
}

// ---------------------------------------------------------------------------
// UTF-8 helpers

TEST(Utf8, SplitKeepsEveryByteAndIsolatesInvalidOnes) {
  using unicode::split_utf8;
  auto describe = [](std::string_view s) {
    std::vector<std::pair<std::string, bool>> out;
    for (const auto& p : split_utf8(s)) out.emplace_back(std::string(p.bytes), p.valid);
    return out;
  };
  using V = std::vector<std::pair<std::string, bool>>;
  EXPECT_EQ(describe(""), V{});
  EXPECT_EQ(describe("a\200b"), (V{{"a", true}, {"\x80", false}, {"b", true}}));
  EXPECT_EQ(describe("\xE6\x97"), (V{{"\xE6", false}, {"\x97", false}}));
  EXPECT_EQ(describe("\xE6\x97\xA5\xF0\x9F\x99\x82"), (V{{"\xE6\x97\xA5\xF0\x9F\x99\x82", true}}));
  EXPECT_EQ(describe("\xC0\xAF"), (V{{"\xC0", false}, {"\xAF", false}}));  // overlong '/'
  EXPECT_EQ(describe("\xED\xA0\x80"),                                      // surrogate
            (V{{"\xED", false}, {"\xA0", false}, {"\x80", false}}));
  EXPECT_EQ(describe("\xF4\x90\x80\x80x").back(), (std::pair<std::string, bool>{"x", true}));
}

// Our validity test must agree exactly with PCRE2's, because valid runs are
// handed to PCRE2 with PCRE2_NO_UTF_CHECK.
TEST(Utf8, ValidityAgreesWithPcre2) {
  int error = 0;
  PCRE2_SIZE offset = 0;
  pcre2_code* code =
      pcre2_compile(reinterpret_cast<PCRE2_SPTR>("x"), 1, PCRE2_UTF, &error, &offset, nullptr);
  ASSERT_NE(code, nullptr);
  pcre2_match_data* data = pcre2_match_data_create(4, nullptr);
  const unsigned char alphabet[] = {'a',  0x00, 0x7F, 0x80, 0x8F, 0x90, 0x9F, 0xA0, 0xBF, 0xC0,
                                    0xC1, 0xC2, 0xDF, 0xE0, 0xE1, 0xED, 0xEF, 0xF0, 0xF4, 0xF5};
  std::mt19937 rng(42);
  for (int i = 0; i < 50000; ++i) {
    std::string s(1 + rng() % 5, '\0');
    for (char& c : s) c = static_cast<char>(alphabet[rng() % sizeof(alphabet)]);
    const auto pieces = unicode::split_utf8(s);
    const bool ours = pieces.size() == 1 && pieces[0].valid;
    const int rc =
        pcre2_match(code, reinterpret_cast<PCRE2_SPTR>(s.data()), s.size(), 0, 0, data, nullptr);
    const bool theirs = !(rc <= PCRE2_ERROR_UTF8_ERR1 && rc >= PCRE2_ERROR_UTF8_ERR21);
    ASSERT_EQ(ours, theirs) << "bytes: " << json(std::vector<int>(s.begin(), s.end())).dump();
    std::string joined;
    for (const auto& p : pieces) joined += p.bytes;
    ASSERT_EQ(joined, s);
  }
  pcre2_match_data_free(data);
  pcre2_code_free(code);
}

// GPT-2's bytes_to_unicode(): printable Latin-1 maps to itself, the other 68
// bytes to U+0100.. in increasing byte order.
TEST(Utf8, Gpt2ByteMapMatchesDefinition) {
  const auto& map = unicode::byte_to_unicode();
  EXPECT_EQ(map['A'], "A");
  EXPECT_EQ(map[' '], "\xC4\xA0");   // U+0120 'Ġ' (256 + 32)
  EXPECT_EQ(map['\n'], "\xC4\x8A");  // U+010A 'Ċ'
  EXPECT_EQ(map[0x7F], "\xC4\xA1");  // U+0121: 33 bytes 0..32 come first
  EXPECT_EQ(map[0xAD], "\xC5\x83");  // U+0143: the last remapped byte
  EXPECT_EQ(map[0xFF], "\xC3\xBF");  // 'ÿ' is printable
  for (int b = 0; b < 256; ++b) {
    std::string_view s = map[b];
    const std::size_t len = unicode::utf8_sequence_length(s, 0);
    ASSERT_EQ(len, s.size());
    EXPECT_EQ(unicode::unicode_to_byte(unicode::decode_utf8(s, 0, len)), b);
  }
}

// ---------------------------------------------------------------------------
// GPT-2 byte-level BPE

class Gpt2Tokenizer : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (auto dir = shared_dir()) {
      gpt2_ = load_tokenizer(*dir / "models/gpt2-tokenizer").release();
      encoder_ = new json(json::parse(read_file(*dir / "models/gpt2-tokenizer/encoder.json")));
    }
  }
  static void TearDownTestSuite() {
    delete gpt2_;
    delete encoder_;
    gpt2_ = nullptr;
    encoder_ = nullptr;
  }
  void SetUp() override {
    if (!gpt2_) THINKEYS_MISSING_SHARED("models/gpt2-tokenizer");
  }
  static int32_t vocab(const std::string& token) { return encoder_->at(token).get<int32_t>(); }

  static inline Tokenizer* gpt2_ = nullptr;
  static inline json* encoder_ = nullptr;
};

TEST_F(Gpt2Tokenizer, PublicEncodings) {
  EXPECT_EQ(gpt2_->encode("Hello world"), (Ids{15496, 995}));
  EXPECT_EQ(gpt2_->encode("hello world"), (Ids{31373, 995}));
  EXPECT_EQ(gpt2_->encode("Hello, world!"), (Ids{15496, 11, 995, 0}));
  EXPECT_EQ(gpt2_->encode("The quick brown fox jumps over the lazy dog."),
            (Ids{464, 2068, 7586, 21831, 18045, 625, 262, 16931, 3290, 13}));
  EXPECT_EQ(gpt2_->vocab_size(), 50257);
  EXPECT_NE(gpt2_->describe().find("encoder.json"), std::string::npos);
}

TEST_F(Gpt2Tokenizer, EndOfTextIsSpecial) {
  EXPECT_EQ(gpt2_->encode("<|endoftext|>"), (Ids{50256}));
  EXPECT_EQ(gpt2_->bos_id(), 50256);
  EXPECT_EQ(gpt2_->eos_id(), 50256);
  EXPECT_EQ(gpt2_->encode("a<|endoftext|>b"), (Ids{vocab("a"), 50256, vocab("b")}));
  EXPECT_EQ(gpt2_->decode(Ids{50256}), "<|endoftext|>");
}

TEST_F(Gpt2Tokenizer, InvalidBytesBecomeByteTokens) {
  // Byte 0x80 is U+0122 'Ģ' in the byte map, 0xFF is 'ÿ', 0xE6 'æ', 0x97 U+0139 'Ĺ'.
  EXPECT_EQ(gpt2_->encode("a\200b"), (Ids{vocab("a"), vocab("Ģ"), vocab("b")}));
  EXPECT_EQ(gpt2_->encode("\xFF"), (Ids{vocab("ÿ")}));
  EXPECT_EQ(gpt2_->encode("\xE6\x97"), (Ids{vocab("æ"), vocab("Ĺ")}));
}

TEST_F(Gpt2Tokenizer, WhitespaceFollowsTheRegex) {
  // "\s+(?!\S)" leaves the last space of a run to start the next word.
  EXPECT_EQ(gpt2_->encode("a  b"), (Ids{vocab("a"), vocab("Ġ"), vocab("Ġb")}));
  EXPECT_EQ(gpt2_->encode("\n\n"), (Ids{vocab("ĊĊ")}));
}

TEST_F(Gpt2Tokenizer, RoundTrips) { expect_round_trips(*gpt2_); }

TEST_F(Gpt2Tokenizer, LongInputsStayFast) {
  // A single huge "word" must not make the merge loop quadratic.
  const std::string digits(200000, '7');
  const Ids ids = gpt2_->encode(digits);
  EXPECT_EQ(gpt2_->decode(ids), digits);
  const std::string spaces(200000, ' ');
  EXPECT_EQ(gpt2_->decode(gpt2_->encode(spaces)), spaces);
}

// The same vocabulary written as a Hugging Face tokenizer.json must encode
// identically, with merges as "a b" strings or as [a, b] arrays.
TEST_F(Gpt2Tokenizer, TokenizerJsonMatchesVocabAndMerges) {
  REQUIRE_SHARED(shared);
  const std::string merges_text = read_file(shared / "models/gpt2-tokenizer/vocab.bpe");
  json merges_strings = json::array(), merges_arrays = json::array();
  std::istringstream lines(merges_text);
  std::string line;
  std::getline(lines, line);  // #version
  while (std::getline(lines, line)) {
    if (line.empty()) continue;
    merges_strings.push_back(line);
    const auto space = line.find(' ');
    merges_arrays.push_back({line.substr(0, space), line.substr(space + 1)});
  }
  const std::vector<std::string> texts = {"Hello world", "It's 2024; caf\xC3\xA9 \xF0\x9F\x99\x82",
                                          "  spaced\n\n\tout  ", "x<|endoftext|>y"};
  for (const json* merges : {&merges_strings, &merges_arrays}) {
    json j;
    j["version"] = "1.0";
    j["added_tokens"] =
        json::array({{{"id", 50256}, {"content", "<|endoftext|>"}, {"special", true}}});
    j["normalizer"] = nullptr;
    j["pre_tokenizer"] = {{"type", "ByteLevel"},
                          {"add_prefix_space", false},
                          {"trim_offsets", true},
                          {"use_regex", true}};
    j["decoder"] = {{"type", "ByteLevel"}};
    j["model"] = {{"type", "BPE"}, {"vocab", *encoder_}, {"merges", *merges}};
    TempDir dir;
    write_file(dir / "tokenizer.json", j.dump());
    const auto tok = load_tokenizer(dir.path());
    EXPECT_NE(tok->describe().find("tokenizer.json"), std::string::npos);
    for (const std::string& text : texts) EXPECT_EQ(tok->encode(text), gpt2_->encode(text));
    EXPECT_EQ(tok->eos_id(), 50256);
  }
}

// ---------------------------------------------------------------------------
// Hand-made tokenizer.json

// Vocabulary: byte b has id b (as its byte-map character), then a few merges;
// every expectation below follows from these tables by hand.
json tiny_tokenizer_json() {
  json vocab = json::object();
  for (int b = 0; b < 256; ++b) vocab[unicode::byte_to_unicode()[b]] = b;
  vocab["he"] = 256;
  vocab["ll"] = 257;
  vocab["hell"] = 258;
  vocab["hello"] = 259;
  vocab["\xC4\xA0w"] = 260;  // "Ġw"
  vocab["23"] = 261;
  vocab["234"] = 262;
  json j;
  j["added_tokens"] = json::array({
      {{"id", 263}, {"content", "<|sp|>"}, {"special", true}},
      {{"id", 264}, {"content", "<|endoftext|>"}, {"special", true}},
  });
  j["pre_tokenizer"] = {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", true}};
  j["decoder"] = {{"type", "ByteLevel"}};
  j["model"] = {{"type", "BPE"},
                {"vocab", vocab},
                {"merges", {"h e", "l l", "he ll", "hell o", "\xC4\xA0 w", "2 3", "23 4"}}};
  return j;
}

TEST(TokenizerJson, HandMadeVocabulary) {
  TempDir dir;
  write_file(dir / "tokenizer.json", tiny_tokenizer_json().dump());
  const auto tok = load_tokenizer(dir / "tokenizer.json");
  EXPECT_EQ(tok->vocab_size(), 265);
  EXPECT_EQ(tok->encode("hello"), (Ids{259}));
  EXPECT_EQ(tok->encode("hello world"), (Ids{259, 260, 'o', 'r', 'l', 'd'}));
  EXPECT_EQ(tok->encode("hel"), (Ids{256, 'l'}));
  EXPECT_EQ(tok->encode("lll"), (Ids{257, 'l'}));  // leftmost pair merges first
  EXPECT_EQ(tok->encode("hello<|sp|>hello"), (Ids{259, 263, 259}));
  EXPECT_EQ(tok->encode("<|sp|"), (Ids{'<', '|', 's', 'p', '|'}));
  EXPECT_EQ(tok->encode("12345"), (Ids{'1', 262, '5'}));  // GPT-2 regex: one word
  EXPECT_EQ(tok->encode("caf\xC3\xA9"), (Ids{'c', 'a', 'f', 0xC3, 0xA9}));
  EXPECT_EQ(tok->encode("\xFF"), (Ids{0xFF}));
  EXPECT_EQ(tok->decode(Ids{259, 263, 264}), "hello<|sp|><|endoftext|>");
  EXPECT_EQ(tok->bos_id(), 264);
  EXPECT_EQ(tok->eos_id(), 264);
  expect_round_trips(*tok);
  EXPECT_EQ(tok->decode(tok->encode("a<|sp|>b <|endoftext|>\xFF")), "a<|sp|>b <|endoftext|>\xFF");
}

// A Llama-3-style pre-tokenizer: Split with Llama-3's published regex inside a
// Sequence, then ByteLevel without its own regex. Digits go in groups of three.
TEST(TokenizerJson, SplitRegexInSequence) {
  json j = tiny_tokenizer_json();
  j["pre_tokenizer"] = {
      {"type", "Sequence"},
      {"pretokenizers",
       {{{"type", "Split"},
         {"pattern",
          {{"Regex",
            R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)"}}},
         {"behavior", "Isolated"},
         {"invert", false}},
        {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", false}}}}};
  // Merges as [a, b] arrays, as newer tokenizer.json files write them.
  json merges = json::array();
  for (const auto& m : j["model"]["merges"]) {
    const std::string s = m.get<std::string>();
    merges.push_back({s.substr(0, s.find(' ')), s.substr(s.find(' ') + 1)});
  }
  j["model"]["merges"] = merges;
  TempDir dir;
  write_file(dir / "tokenizer.json", j.dump());
  const auto tok = load_tokenizer(dir.path());
  EXPECT_EQ(tok->encode("12345"), (Ids{'1', 261, '4', '5'}));  // "123" | "45"
  EXPECT_EQ(tok->encode("hello world"), (Ids{259, 260, 'o', 'r', 'l', 'd'}));
  expect_round_trips(*tok);
}

// ---------------------------------------------------------------------------
// SentencePiece (Llama-2)

class Llama2Tokenizers : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (auto dir = shared_dir()) {
      const fs::path d = *dir / "models/llama2-tokenizer";
      if (kSentencePieceTokenizer) sp_ = load_tokenizer(d / "tokenizer.model").release();
      bin_ = load_tokenizer(d / "tokenizer.bin").release();
      reference_ = new sentencepiece::SentencePieceProcessor();
      if (!reference_->Load((d / "tokenizer.model").string()).ok()) std::abort();
    }
  }
  static void TearDownTestSuite() {
    delete sp_;
    delete bin_;
    delete reference_;
    sp_ = bin_ = nullptr;
    reference_ = nullptr;
  }
  void SetUp() override {
    if (!bin_) THINKEYS_MISSING_SHARED("models/llama2-tokenizer");
  }
  // For tests of the SentencePiece tokenizer itself.
  static bool skip_sentencepiece() { return !sp_; }
  static Ids reference_ids(const std::string& text) {
    const std::vector<int> ids = reference_->EncodeAsIds(text);
    return Ids(ids.begin(), ids.end());
  }

  static inline Tokenizer* sp_ = nullptr;
  static inline Tokenizer* bin_ = nullptr;
  static inline sentencepiece::SentencePieceProcessor* reference_ = nullptr;
};

const std::vector<std::string> kEnglish = {
    "Hello world",
    "The quick brown fox jumps over the lazy dog.",
    "Once upon a time, there was a little girl named Lily.",
    "She loved to play outside in the park with her friends.",
    "In 1969, Neil Armstrong became the first person to walk on the Moon.",
    "Machine learning models compress key-value caches to save memory!",
    "\"Don't worry,\" said Mom. \"We can fix it tomorrow.\"",
    "E = mc^2 is Einstein's famous equation; it relates mass & energy.",
    "What's the capital of France? Paris, of course.",
    "Lines\nwith\nnewlines\n\nand   multiple   spaces",
    "  Leading spaces and trailing ones  ",
    "URLs like https://example.com/path?query=1 are tokenized too.",
    "Numbers: 3.14159, 2,718, -42 and 1e-10.",
    "Unicode: caf\xC3\xA9, na\xC3\xAFve, \xE6\x97\xA5\xE6\x9C\xAC\xE8\xAA\x9E, "
    "\xF0\x9F\x99\x82",
};

TEST_F(Llama2Tokenizers, SentencePieceHelloWorld) {
  if (skip_sentencepiece()) GTEST_SKIP() << kNoSentencePiece;
  EXPECT_EQ(sp_->encode("Hello world"), (Ids{15043, 3186}));
  EXPECT_EQ(sp_->bos_id(), 1);
  EXPECT_EQ(sp_->eos_id(), 2);
  EXPECT_EQ(sp_->vocab_size(), 32000);
  EXPECT_EQ(sp_->decode(Ids{1, 15043, 3186}), "Hello world");
  EXPECT_EQ(sp_->decode(Ids{15043, 3186}), "Hello world");
}

TEST_F(Llama2Tokenizers, SentencePieceMatchesLibraryOnValidText) {
  if (skip_sentencepiece()) GTEST_SKIP() << kNoSentencePiece;
  for (const std::string& text : kEnglish) {
    EXPECT_EQ(sp_->encode(text), reference_ids(text)) << text;
  }
}

TEST_F(Llama2Tokenizers, SentencePieceInvalidBytesUseByteFallback) {
  if (skip_sentencepiece()) GTEST_SKIP() << kNoSentencePiece;
  const auto id = [](const char* piece) { return reference_->PieceToId(piece); };
  // Only the first run gets the dummy prefix: "b" after the invalid byte is the
  // plain piece "b", not "▁b".
  EXPECT_EQ(sp_->encode("a\200b"), (Ids{id("▁a"), id("<0x80>"), id("b")}));
  EXPECT_EQ(sp_->encode("\xFF"), (Ids{id("<0xFF>")}));
  EXPECT_EQ(sp_->encode("\xE6\x97"), (Ids{id("<0xE6>"), id("<0x97>")}));
}

TEST_F(Llama2Tokenizers, SentencePieceRoundTrips) {
  if (skip_sentencepiece()) GTEST_SKIP() << kNoSentencePiece;
  expect_round_trips(*sp_);
}

// llama2.c's encoder on tokenizer.bin and libsentencepiece on tokenizer.model
// implement the same BPE and must agree (no known difference on these inputs).
TEST_F(Llama2Tokenizers, Llama2cMatchesSentencePiece) {
  for (const std::string& text : kEnglish) {
    EXPECT_EQ(bin_->encode(text), reference_ids(text)) << text;
  }
  EXPECT_EQ(bin_->encode("Hello world"), (Ids{15043, 3186}));
  EXPECT_EQ(bin_->bos_id(), 1);
  EXPECT_EQ(bin_->eos_id(), 2);
  EXPECT_EQ(bin_->vocab_size(), 32000);
}

TEST_F(Llama2Tokenizers, Llama2cRoundTrips) {
  expect_round_trips(*bin_);
  EXPECT_EQ(bin_->decode(Ids{1, 15043, 3186}), "Hello world");  // space stripped after BOS
}

// ---------------------------------------------------------------------------
// llama2.c tok512.bin (stories260K)

// Pieces of a llama2.c tokenizer.bin, read independently of the tokenizer code.
std::vector<std::string> read_llama2c_pieces(const fs::path& file) {
  const std::string bytes = read_file(file);
  std::vector<std::string> pieces;
  std::size_t pos = 4;
  while (pos + 8 <= bytes.size()) {
    int32_t len = 0;
    std::memcpy(&len, bytes.data() + pos + 4, 4);
    pieces.push_back(bytes.substr(pos + 8, static_cast<std::size_t>(len)));
    pos += 8 + static_cast<std::size_t>(len);
  }
  return pieces;
}

// The greedy output quoted in the model card: the lines after the command line
// with "-t 0.0", up to the end of the fenced block.
std::string model_card_text(const fs::path& card) {
  std::istringstream in(read_file(card));
  std::string line, text;
  bool found = false, first = true;
  while (std::getline(in, line)) {
    if (!found) {
      found = line.find("-t 0.0") != std::string::npos;
      continue;
    }
    if (line.starts_with("```")) break;
    if (!first) text += '\n';
    text += line;
    first = false;
  }
  return text;
}

TEST(Stories260K, ModelCardTextRoundTrips) {
  REQUIRE_SHARED(shared);
  const fs::path dir = shared / "models/stories260K";
  const auto tok = load_tokenizer(dir / "tok512.bin", 512);
  EXPECT_EQ(tok->vocab_size(), 512);
  const std::string text = model_card_text(dir / "stories260K.md");
  ASSERT_TRUE(text.starts_with("Once upon a time, there was a little girl named Lily."));
  ASSERT_GT(text.size(), 500u);
  const Ids ids = tok->encode(text);
  EXPECT_LT(ids.size(), text.size() / 2);  // merges happened
  EXPECT_EQ(tok->decode(ids), text);
  expect_round_trips(*tok);
}

TEST(Stories260K, OnceUponATimePiecesIncludeDummyPrefix) {
  REQUIRE_SHARED(shared);
  const fs::path file = shared / "models/stories260K/tok512.bin";
  const auto tok = load_tokenizer(file, 512);
  const std::vector<std::string> pieces = read_llama2c_pieces(file);
  ASSERT_EQ(pieces.size(), 512u);
  const Ids ids = tok->encode("Once upon a time");
  std::string concatenated;
  for (int32_t id : ids) concatenated += pieces.at(static_cast<std::size_t>(id));
  EXPECT_EQ(concatenated, " Once upon a time");
  EXPECT_EQ(tok->decode(ids), "Once upon a time");
  Ids with_bos{1};
  with_bos.insert(with_bos.end(), ids.begin(), ids.end());
  EXPECT_EQ(tok->decode(with_bos), "Once upon a time");
}

// ---------------------------------------------------------------------------
// Loader: dispatch, search order and errors

TEST(Loader, FindsTokenizersByDirectoryAndCheckpoint) {
  REQUIRE_SHARED(shared);
  const fs::path models = shared / "models";
  EXPECT_NE(load_tokenizer(models / "gpt2-tokenizer")->describe().find("encoder.json"),
            std::string::npos);
  EXPECT_NE(load_tokenizer(models / "gpt2-tokenizer/vocab.bpe")->describe().find("BPE"),
            std::string::npos);
  if (kSentencePieceTokenizer) {
    // tokenizer.model comes before tokenizer.bin in the search order.
    EXPECT_NE(load_tokenizer(models / "llama2-tokenizer")->describe().find("SentencePiece"),
              std::string::npos);
  }
  const auto tok = load_tokenizer(models / "stories260K/stories260K.bin", 512);
  EXPECT_NE(tok->describe().find("tok512.bin"), std::string::npos);
  EXPECT_EQ(tok->vocab_size(), 512);
  EXPECT_NE(load_tokenizer(models / "stories260K", 512)->describe().find("tok512.bin"),
            std::string::npos);
  // Without the vocabulary size there is no tok<N>.bin to look for.
  EXPECT_THROW(load_tokenizer(models / "stories260K/stories260K.bin"), Error);
}

TEST(Loader, VocabularySizeMustFitTheModel) {
  REQUIRE_SHARED(shared);
  const fs::path models = shared / "models";
  EXPECT_THROW(load_tokenizer(models / "gpt2-tokenizer", 50000), Error);
  EXPECT_EQ(load_tokenizer(models / "gpt2-tokenizer", 50304)->vocab_size(), 50257);  // padded
  EXPECT_THROW(load_tokenizer(models / "llama2-tokenizer/tokenizer.bin", 512), Error);
  EXPECT_THROW(load_tokenizer(models / "llama2-tokenizer/tokenizer.model", 512), Error);
  // llama2.c reads exactly the model's count, so a short file is truncated.
  EXPECT_THROW(load_tokenizer(models / "stories260K/tok512.bin", 600), Error);
}

TEST(Loader, MissingFilesThrow) {
  TempDir dir;
  EXPECT_THROW(load_tokenizer(dir / "nope.model"), Error);
  EXPECT_THROW(load_tokenizer(dir / "tokenizer.json"), Error);
  EXPECT_THROW(load_tokenizer(dir.path()), Error);  // empty directory
  try {
    load_tokenizer(dir.path());
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("tokenizer.model"), std::string::npos) << e.what();
  }
}

TEST(Loader, TruncatedOrCorruptTokenizerBinThrows) {
  REQUIRE_SHARED(shared);
  const std::string good = read_file(shared / "models/stories260K/tok512.bin");
  TempDir dir;
  const fs::path file = dir / "tokenizer.bin";
  for (std::size_t cut : {std::size_t{0}, std::size_t{2}, std::size_t{4}, std::size_t{10},
                          std::size_t{100}, good.size() / 2, good.size() - 1}) {
    write_file(file, good.substr(0, cut));
    EXPECT_THROW(load_tokenizer(file, 512), Error) << "cut at " << cut;
    EXPECT_THROW(load_tokenizer(file), Error) << "cut at " << cut;
  }
  for (int32_t bad_len : {-1, 1 << 30}) {
    std::string corrupt = good;
    std::memcpy(corrupt.data() + 4 + 4, &bad_len, 4);  // length of token 0
    write_file(file, corrupt);
    EXPECT_THROW(load_tokenizer(file, 512), Error) << "len " << bad_len;
  }
  write_file(file, good + "extra");
  EXPECT_THROW(load_tokenizer(file, 512), Error);
}

TEST(Loader, CorruptSentencePieceModelThrows) {
  REQUIRE_SHARED(shared);
  const std::string good = read_file(shared / "models/llama2-tokenizer/tokenizer.model");
  TempDir dir;
  for (std::size_t cut : {std::size_t{0}, std::size_t{7}, good.size() / 2}) {
    write_file(dir / "tokenizer.model", good.substr(0, cut));
    EXPECT_THROW(load_tokenizer(dir / "tokenizer.model"), Error) << "cut at " << cut;
  }
}

TEST(Loader, MalformedTokenizerJsonThrows) {
  TempDir dir;
  const fs::path file = dir / "tokenizer.json";
  json unknown_merge = tiny_tokenizer_json();
  unknown_merge["model"]["merges"].push_back("q zz");
  json bad_id = tiny_tokenizer_json();
  bad_id["model"]["vocab"]["he"] = -5;
  json bad_regex = tiny_tokenizer_json();
  bad_regex["pre_tokenizer"] = {
      {"type", "Split"}, {"pattern", {{"Regex", "(unclosed"}}}, {"behavior", "Isolated"}};
  for (const std::string& text :
       {std::string("{not json"), std::string(""), std::string("{}"), std::string("[1,2]"),
        std::string(R"({"model": {"type": "BPE", "vocab": [1, 2], "merges": []}})"),
        std::string(R"({"model": {"type": "BPE", "vocab": {"a": 0}, "merges": [3]}})"),
        std::string(R"({"model": {"type": "Unigram", "vocab": [["a", 0.0]]}})"),
        unknown_merge.dump(), bad_id.dump(), bad_regex.dump(),
        tiny_tokenizer_json().dump(2).substr(0, 200)}) {
    write_file(file, text);
    EXPECT_THROW(load_tokenizer(file), Error) << text.substr(0, 80);
  }
}

TEST(Loader, VocabJsonWithoutMergesThrows) {
  TempDir dir;
  write_file(dir / "vocab.json", R"({"a": 0, "b": 1})");
  EXPECT_THROW(load_tokenizer(dir / "vocab.json"), Error);
  EXPECT_THROW(load_tokenizer(dir.path()), Error);
  try {
    load_tokenizer(dir.path());
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("vocab.json without merges.txt"), std::string::npos)
        << e.what();
  }
}

// Llama-2's tokenizer.json is a SentencePiece-style BPE (byte_fallback,
// Metaspace); byte-level BPE would give wrong ids, so the loader must refuse it
// and use tokenizer.model when that is present.
TEST(Loader, SentencePieceStyleTokenizerJsonFallsBackToModel) {
  REQUIRE_SHARED(shared);
  TempDir dir;
  json j;
  j["normalizer"] = {
      {"type", "Sequence"},
      {"normalizers",
       {{{"type", "Prepend"}, {"prepend", "\xE2\x96\x81"}},
        {{"type", "Replace"}, {"pattern", {{"String", " "}}}, {"content", "\xE2\x96\x81"}}}}};
  j["pre_tokenizer"] = nullptr;
  j["decoder"] = {{"type", "Sequence"}, {"decoders", {{{"type", "ByteFallback"}}}}};
  j["model"] = {{"type", "BPE"},
                {"byte_fallback", true},
                {"vocab", {{"<unk>", 0}, {"a", 1}}},
                {"merges", json::array()}};
  write_file(dir / "tokenizer.json", j.dump());
  EXPECT_THROW(load_tokenizer(dir.path()), Error);
  EXPECT_THROW(load_tokenizer(dir / "tokenizer.json"), UnsupportedTokenizerJson);
  if (!kSentencePieceTokenizer) GTEST_SKIP() << kNoSentencePiece;
  fs::copy_file(shared / "models/llama2-tokenizer/tokenizer.model", dir / "tokenizer.model");
  const auto tok = load_tokenizer(dir.path());
  EXPECT_NE(tok->describe().find("SentencePiece"), std::string::npos);
  EXPECT_EQ(tok->encode("Hello world"), (Ids{15043, 3186}));
}

TEST(Loader, DecodingUnknownIdsThrows) {
  TempDir dir;
  write_file(dir / "tokenizer.json", tiny_tokenizer_json().dump());
  const auto tok = load_tokenizer(dir.path());
  EXPECT_THROW(tok->decode_next(-1, 265), Error);
  EXPECT_THROW(tok->decode_next(-1, -3), Error);
}

}  // namespace
}  // namespace thinkeys
