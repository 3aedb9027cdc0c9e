// The server's request bodies (src/serve/api_request.h): the first byte picks
// the endpoint (/v1/completions, /v1/chat/completions, /tokenize,
// /detokenize), the rest is the JSON body. A refusal must be an ApiError with
// a 4xx status whose error body is itself valid JSON.
#include <cstdint>
#include <cstdlib>
#include <nlohmann/json.hpp>
#include <string_view>

#include "serve/api_request.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  std::string_view body(reinterpret_cast<const char*>(data + 1), size - 1);
  try {
    switch (data[0] % 4) {
      case 0: {
        auto r = thinkeys::serve::parse_completion_request(body);
        if (r.prompt_text.has_value() == r.prompt_tokens.has_value()) __builtin_trap();
        break;
      }
      case 1:
        (void)thinkeys::serve::parse_chat_request(body);
        break;
      case 2:
        (void)thinkeys::serve::parse_tokenize_request(body);
        break;
      default:
        (void)thinkeys::serve::parse_detokenize_request(body);
        break;
    }
  } catch (const thinkeys::serve::ApiError& e) {
    if (e.status() < 400 || e.status() > 499) __builtin_trap();
    if (nlohmann::json::parse(e.json(), nullptr, false).is_discarded()) __builtin_trap();
  }
  return 0;
}
