#include "tokenizer_probe.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "util/error.h"

namespace thinkeys::fuzz {
namespace {

// Runs `step`; true when it refused with thinkeys::Error, which aborts (so
// libFuzzer records the input) where `forbidden` says the contract rules a
// refusal out.
template <typename Step>
bool refused(Step step, bool forbidden, const char* what) {
  try {
    step();
    return false;
  } catch (const Error&) {
    if (forbidden) {
      std::fprintf(stderr, "%s\n", what);
      std::abort();
    }
    return true;
  }
}

}  // namespace

void probe_text(const Tokenizer& tok, std::string_view text, bool require_round_trip) {
  std::vector<int32_t> ids;
  if (refused([&] { ids = tok.encode(text); }, require_round_trip,
              "encode refused a text, which the contract forbids"))
    return;
  for (int32_t id : ids) {
    if (id < 0 || id >= tok.vocab_size()) {
      std::fprintf(stderr, "encode produced id %d outside the vocabulary of %d\n", id,
                   tok.vocab_size());
      std::abort();
    }
  }
  std::string back;
  if (refused([&] { back = tok.decode(ids); }, require_round_trip,
              "decode refused ids that encode produced"))
    return;
  if (require_round_trip && back != text) {
    std::fprintf(stderr, "round trip changed a %zu-byte text into %zu bytes\n", text.size(),
                 back.size());
    std::abort();
  }
}

void probe_ids(const Tokenizer& tok, std::span<const uint8_t> bytes) {
  int32_t prev = -1;
  for (size_t i = 0; i + 4 <= bytes.size(); i += 4) {
    int32_t id;
    std::memcpy(&id, bytes.data() + i, 4);
    // Mostly ids near the vocabulary, sometimes anything at all.
    if ((bytes[i] & 0x80) == 0 && tok.vocab_size() > 0)
      id = static_cast<int32_t>(static_cast<uint32_t>(id) %
                                (static_cast<uint32_t>(tok.vocab_size()) + 2)) -
           1;
    try {
      (void)tok.decode_next(prev, id);
      prev = id;
    } catch (const Error&) {
    }
  }
}

void probe_fixed_texts(const Tokenizer& tok) {
  static const std::string_view texts[] = {
      "Once upon a time, there was a little girl.",
      "  two  spaces\n\n\ttab\r\n",
      "caf\xc3\xa9 \xe6\xbc\xa2\xe5\xad\x97 \xf0\x9f\x99\x82",
      std::string_view("\xff\xfe\x80\xc3\x00z", 6),
      "<|endoftext|><s></s><unk>",
  };
  for (auto t : texts) probe_text(tok, t, false);
  (void)tok.bos_id();
  (void)tok.eos_id();
  (void)tok.describe();
}

void probe_loaded(const Tokenizer& tok, std::span<const uint8_t> input) {
  probe_fixed_texts(tok);
  const size_t tail = std::min<size_t>(input.size(), 64);
  probe_text(
      tok,
      std::string_view(reinterpret_cast<const char*>(input.data() + input.size() - tail), tail),
      false);
  probe_ids(tok, input.first(std::min<size_t>(input.size(), 256)));
}

}  // namespace thinkeys::fuzz
