// Arbitrary bytes through known-good tokenizers (committed seed files of the
// tokenizer.json, llama2.c and SentencePiece targets). The first byte picks the tokenizer, the rest
// is the text. Here the Tokenizer contract is enforced: any byte string encodes to in-range ids and
// decodes back to itself. SentencePiece normalises (NFKC, whitespace), so its round trip is exempt
// and it is only checked for not crashing.
#include <array>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string_view>
#include <vector>

#include "tokenizer/byte_bpe_tokenizer.h"
#include "tokenizer/llama2c_tokenizer.h"
#include "tokenizer/sentencepiece_tokenizer.h"
#include "tokenizer_probe.h"

namespace {

struct Known {
  std::unique_ptr<thinkeys::Tokenizer> tok;
  bool round_trips;
};

std::vector<Known> load_known() {
  const std::filesystem::path corpus = THINKEYS_FUZZ_DIR "/corpus";
  std::vector<Known> all;
  all.push_back(
      {thinkeys::load_tokenizer_json(corpus / "tokenizer_json/gpt2-small.tokenizer.json"), true});
  all.push_back({thinkeys::load_llama2c_tokenizer(corpus / "llama2c_tokenizer/tok512.bin"), true});
  all.push_back(
      {thinkeys::load_sentencepiece(corpus / "sentencepiece/spm-bytefallback.model"), false});
  return all;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::vector<Known> known = load_known();
  if (size == 0) return 0;
  const Known& k = known[data[0] % known.size()];
  std::string_view text(reinterpret_cast<const char*>(data + 1), size - 1);
  thinkeys::fuzz::probe_text(*k.tok, text, k.round_trips);
  thinkeys::fuzz::probe_ids(*k.tok, {data + 1, size - 1});
  return 0;
}
