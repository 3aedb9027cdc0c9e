#pragma once
// OpenAI-compatible request bodies as pure functions: JSON text in, a
// validated request out, or an ApiError carrying the HTTP status and
// OpenAI's error JSON. No HTTP, no model: the fuzz targets call these
// directly, and the server maps the result onto the scheduler.
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "util/error.h"

namespace thinkeys::serve {

// {"error": {"message", "type", "param", "code"}} with its status.
class ApiError : public Error {
 public:
  ApiError(int status, std::string message, std::string type = "invalid_request_error",
           std::string param = {}, std::string code = {});
  int status() const { return status_; }
  const std::string& type() const { return type_; }
  const std::string& param() const { return param_; }
  const std::string& code() const { return code_; }
  std::string json() const;  // the response body

 private:
  int status_;
  std::string type_, param_, code_;
};

// Fields shared by both generation endpoints.
struct SamplingFields {
  std::optional<std::string> model;
  std::optional<int> max_tokens;  // max_tokens or max_completion_tokens
  double temperature = 1.0;       // OpenAI's default
  double top_p = 1.0;
  std::optional<uint64_t> seed;
  std::vector<std::string> stop;  // at most 4, none empty
  bool stream = false;
  bool include_usage = false;  // stream_options.include_usage
  int top_logprobs = -1;       // < 0: no log-probabilities
};

struct CompletionRequest {
  SamplingFields sampling;
  // Exactly one of these: text is tokenized (BOS as `thinkeys generate`
  // would add it); token ids are used as they are.
  std::optional<std::string> prompt_text;
  std::optional<std::vector<int32_t>> prompt_tokens;
};

struct ChatMessage {
  std::string role;
  std::string content;  // text parts joined
};

struct ChatRequest {
  SamplingFields sampling;
  std::vector<ChatMessage> messages;
  bool add_generation_prompt = true;
};

struct TokenizeRequest {
  std::string content;
  bool add_special = false;  // BOS as for a completion prompt
};

struct DetokenizeRequest {
  std::vector<int32_t> tokens;
};

// Each throws ApiError (400) for malformed JSON, a wrong type, an out-of-range
// value or a field we do not implement (named in the message).
CompletionRequest parse_completion_request(std::string_view body);
ChatRequest parse_chat_request(std::string_view body);
TokenizeRequest parse_tokenize_request(std::string_view body);
DetokenizeRequest parse_detokenize_request(std::string_view body);

}  // namespace thinkeys::serve
