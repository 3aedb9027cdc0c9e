// Chat templates (the Jinja interpreter, src/chat/) and the messages they
// render. One input holds both, split at the first "\0messages\0": a template
// source, then a JSON messages array. An empty template part selects a
// built-in template (by the last byte of the input), so messages alone are
// fuzzed against the formats thinkeys ships; unparseable messages fall back to
// a fixed conversation, so the template is always exercised.
#include <cstdint>
#include <string>
#include <string_view>

#include "chat/chat_template.h"
#include "util/error.h"

namespace {

const nlohmann::ordered_json& default_messages() {
  static const auto m = nlohmann::ordered_json::parse(R"([
    {"role": "system", "content": "You are terse."},
    {"role": "user", "content": "Hi <s> there"},
    {"role": "assistant", "content": "Hello."},
    {"role": "user", "content": "caf\u00e9 \ud83d\ude42"}])");
  return m;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  constexpr std::string_view kSeparator("\0messages\0", 10);
  std::string_view all(reinterpret_cast<const char*>(data), size);
  const size_t cut = all.find(kSeparator);
  const std::string_view source = all.substr(0, cut);
  const std::string_view messages_text =
      cut == std::string_view::npos ? std::string_view() : all.substr(cut + kSeparator.size());

  nlohmann::ordered_json messages = nlohmann::ordered_json::parse(messages_text, nullptr, false);
  if (messages.is_discarded()) messages = default_messages();

  thinkeys::TokenizerConventions tokens;
  tokens.bos_token = "<s>";
  tokens.eos_token = "</s>";
  tokens.unk_token = "<unk>";
  try {
    auto names = thinkeys::chat::ChatTemplate::builtin_names();
    auto tmpl = source.empty() ? thinkeys::chat::ChatTemplate::builtin(
                                     names[size ? data[size - 1] % names.size() : 0])
                               : thinkeys::chat::ChatTemplate::from_source(source, "fuzz");
    for (bool generation_prompt : {false, true}) {
      try {
        std::string out = tmpl.render(messages, generation_prompt, tokens);
        asm volatile("" : : "r"(out.size()));
      } catch (const thinkeys::Error&) {
      }
    }
  } catch (const thinkeys::Error&) {
  }
  return 0;
}
