#include "serve/api_request.h"

#include <cmath>
#include <limits>
#include <nlohmann/json.hpp>

namespace thinkeys::serve {

using json = nlohmann::json;

ApiError::ApiError(int status, std::string message, std::string type, std::string param,
                   std::string code)
    : Error(std::move(message)),
      status_(status),
      type_(std::move(type)),
      param_(std::move(param)),
      code_(std::move(code)) {}

std::string ApiError::json() const {
  nlohmann::json e = {{"message", what()}, {"type", type_}};
  e["param"] = param_.empty() ? nlohmann::json() : nlohmann::json(param_);
  e["code"] = code_.empty() ? nlohmann::json() : nlohmann::json(code_);
  return nlohmann::json{{"error", e}}.dump(-1, ' ', false,
                                           nlohmann::json::error_handler_t::replace);
}

namespace {

ApiError bad(const std::string& param, const std::string& message) {
  return ApiError(400, message, "invalid_request_error", param);
}

json parse_object(std::string_view body) {
  json j = json::parse(body, nullptr, false);
  if (j.is_discarded()) throw ApiError(400, "the request body is not valid JSON");
  if (!j.is_object()) throw ApiError(400, "the request body must be a JSON object");
  return j;
}

// A present, non-null field.
const json* field(const json& j, const char* name) {
  auto it = j.find(name);
  if (it == j.end() || it->is_null()) return nullptr;
  return &*it;
}

std::string get_string(const json& v, const std::string& name) {
  if (!v.is_string()) throw bad(name, "'" + name + "' must be a string");
  return v.get<std::string>();
}

bool get_bool(const json& v, const std::string& name) {
  if (!v.is_boolean()) throw bad(name, "'" + name + "' must be a boolean");
  return v.get<bool>();
}

double get_number(const json& v, const std::string& name, double lo, double hi) {
  if (!v.is_number()) throw bad(name, "'" + name + "' must be a number");
  const double x = v.get<double>();
  if (!(x >= lo && x <= hi))
    throw bad(name,
              "'" + name + "' must be between " + json(lo).dump() + " and " + json(hi).dump());
  return x;
}

long long get_integer(const json& v, const std::string& name, long long lo, long long hi) {
  if (!v.is_number_integer()) throw bad(name, "'" + name + "' must be an integer");
  if (v.is_number_unsigned() &&
      v.get<unsigned long long>() >
          static_cast<unsigned long long>(std::numeric_limits<long long>::max()))
    throw bad(name, "'" + name + "' must be at most " + std::to_string(hi));
  const long long x = v.get<long long>();
  if (x < lo || x > hi)
    throw bad(name, "'" + name + "' must be between " + std::to_string(lo) + " and " +
                        std::to_string(hi));
  return x;
}

std::vector<int32_t> get_tokens(const json& v, const std::string& name) {
  if (!v.is_array()) throw bad(name, "'" + name + "' must be an array of token ids");
  std::vector<int32_t> out;
  out.reserve(v.size());
  for (const json& t : v)
    out.push_back(
        static_cast<int32_t>(get_integer(t, name, 0, std::numeric_limits<int32_t>::max())));
  return out;
}

// Fields OpenAI defines that we do not implement: refused by name, never
// silently ignored. `n`, `best_of` and the penalties pass at their neutral
// values, which is what clients send when they mean nothing.
void refuse_unimplemented(const json& j) {
  for (const char* name :
       {"tools", "tool_choice", "functions", "function_call", "response_format", "logit_bias",
        "suffix", "audio", "modalities", "prediction", "parallel_tool_calls"})
    if (field(j, name))
      throw bad(name, std::string("'") + name + "' is not supported by this server");
  if (const json* n = field(j, "n"); n && !(n->is_number_integer() && n->get<long long>() == 1))
    throw bad("n", "only n = 1 is supported (one choice per request)");
  if (const json* b = field(j, "best_of");
      b && !(b->is_number_integer() && b->get<long long>() == 1))
    throw bad("best_of", "only best_of = 1 is supported");
  if (const json* e = field(j, "echo"); e && !(e->is_boolean() && !e->get<bool>()))
    throw bad("echo", "'echo' is not supported by this server");
  for (const char* name : {"presence_penalty", "frequency_penalty"})
    if (const json* p = field(j, name); p && !(p->is_number() && p->get<double>() == 0.0))
      throw bad(name, std::string("'") + name + "' is not supported (only 0)");
}

SamplingFields parse_sampling(const json& j) {
  refuse_unimplemented(j);
  SamplingFields s;
  if (const json* v = field(j, "model")) s.model = get_string(*v, "model");
  for (const char* name : {"max_tokens", "max_completion_tokens"})
    if (const json* v = field(j, name)) {
      const int m = static_cast<int>(get_integer(*v, name, 0, 1 << 30));
      if (s.max_tokens && *s.max_tokens != m)
        throw bad(name, "'max_tokens' and 'max_completion_tokens' disagree");
      s.max_tokens = m;
    }
  if (const json* v = field(j, "temperature")) s.temperature = get_number(*v, "temperature", 0, 2);
  if (const json* v = field(j, "top_p")) {
    s.top_p = get_number(*v, "top_p", 0, 1);
    if (s.top_p == 0) throw bad("top_p", "'top_p' must be greater than 0");
  }
  if (const json* v = field(j, "seed")) {
    if (!v->is_number_integer()) throw bad("seed", "'seed' must be an integer");
    s.seed =
        v->is_number_unsigned() ? v->get<uint64_t>() : static_cast<uint64_t>(v->get<int64_t>());
  }
  if (const json* v = field(j, "stop")) {
    if (v->is_string()) {
      s.stop.push_back(v->get<std::string>());
    } else if (v->is_array()) {
      if (v->size() > 4) throw bad("stop", "'stop' holds at most 4 sequences");
      for (const json& x : *v) s.stop.push_back(get_string(x, "stop"));
    } else {
      throw bad("stop", "'stop' must be a string or an array of strings");
    }
    for (const auto& x : s.stop)
      if (x.empty()) throw bad("stop", "stop sequences must not be empty");
  }
  if (const json* v = field(j, "stream")) s.stream = get_bool(*v, "stream");
  if (const json* v = field(j, "stream_options")) {
    if (!v->is_object()) throw bad("stream_options", "'stream_options' must be an object");
    if (!s.stream) throw bad("stream_options", "'stream_options' needs 'stream': true");
    if (const json* u = field(*v, "include_usage"))
      s.include_usage = get_bool(*u, "stream_options.include_usage");
  }
  return s;
}

}  // namespace

CompletionRequest parse_completion_request(std::string_view body) {
  const json j = parse_object(body);
  CompletionRequest r;
  r.sampling = parse_sampling(j);
  if (const json* v = field(j, "logprobs"))
    r.sampling.top_logprobs = static_cast<int>(get_integer(*v, "logprobs", 0, 20));
  const json* p = field(j, "prompt");
  if (!p) throw bad("prompt", "'prompt' is required");
  if (p->is_string()) {
    r.prompt_text = p->get<std::string>();
  } else if (p->is_array() && !p->empty() && (*p)[0].is_string()) {
    if (p->size() != 1) throw bad("prompt", "only one prompt per request is supported");
    r.prompt_text = (*p)[0].get<std::string>();
  } else if (p->is_array() && !p->empty() && (*p)[0].is_array()) {
    if (p->size() != 1) throw bad("prompt", "only one prompt per request is supported");
    r.prompt_tokens = get_tokens((*p)[0], "prompt");
  } else if (p->is_array()) {
    r.prompt_tokens = get_tokens(*p, "prompt");
    if (r.prompt_tokens->empty()) throw bad("prompt", "'prompt' must not be empty");
  } else {
    throw bad("prompt", "'prompt' must be a string or an array of token ids");
  }
  return r;
}

ChatRequest parse_chat_request(std::string_view body) {
  const json j = parse_object(body);
  ChatRequest r;
  r.sampling = parse_sampling(j);
  bool logprobs = false;
  if (const json* v = field(j, "logprobs")) logprobs = get_bool(*v, "logprobs");
  if (const json* v = field(j, "top_logprobs")) {
    if (!logprobs) throw bad("top_logprobs", "'top_logprobs' needs 'logprobs': true");
    r.sampling.top_logprobs = static_cast<int>(get_integer(*v, "top_logprobs", 0, 20));
  } else if (logprobs) {
    r.sampling.top_logprobs = 0;
  }
  if (const json* v = field(j, "add_generation_prompt"))
    r.add_generation_prompt = get_bool(*v, "add_generation_prompt");
  const json* m = field(j, "messages");
  if (!m) throw bad("messages", "'messages' is required");
  if (!m->is_array() || m->empty())
    throw bad("messages", "'messages' must be a non-empty array of messages");
  for (std::size_t i = 0; i < m->size(); ++i) {
    const json& x = (*m)[i];
    const std::string at = "messages[" + std::to_string(i) + "]";
    if (!x.is_object()) throw bad(at, "'" + at + "' must be an object");
    if (field(x, "tool_calls")) throw bad(at + ".tool_calls", "tool calls are not supported");
    const json* role = field(x, "role");
    if (!role) throw bad(at + ".role", "'" + at + ".role' is required");
    ChatMessage msg;
    msg.role = get_string(*role, at + ".role");
    if (msg.role != "system" && msg.role != "developer" && msg.role != "user" &&
        msg.role != "assistant")
      throw bad(at + ".role", "'" + at + ".role' must be system, developer, user or assistant");
    const json* content = field(x, "content");
    if (!content) throw bad(at + ".content", "'" + at + ".content' is required");
    if (content->is_string()) {
      msg.content = content->get<std::string>();
    } else if (content->is_array()) {
      for (const json& part : *content) {
        if (!part.is_object() || !field(part, "type") || !part["type"].is_string() ||
            part["type"] != "text" || !field(part, "text") || !part["text"].is_string())
          throw bad(at + ".content", "only text content parts are supported");
        msg.content += part["text"].get<std::string>();
      }
    } else {
      throw bad(at + ".content", "'" + at + ".content' must be a string or an array of parts");
    }
    r.messages.push_back(std::move(msg));
  }
  return r;
}

TokenizeRequest parse_tokenize_request(std::string_view body) {
  const json j = parse_object(body);
  TokenizeRequest r;
  const json* c = field(j, "content");
  if (!c) throw bad("content", "'content' is required");
  r.content = get_string(*c, "content");
  if (const json* v = field(j, "add_special")) r.add_special = get_bool(*v, "add_special");
  return r;
}

DetokenizeRequest parse_detokenize_request(std::string_view body) {
  const json j = parse_object(body);
  const json* t = field(j, "tokens");
  if (!t) throw bad("tokens", "'tokens' is required");
  return {get_tokens(*t, "tokens")};
}

}  // namespace thinkeys::serve
