// Request parsing and streamed-text holdback, without HTTP or a model:
// expectations are hand-derived from OpenAI's API reference (field names,
// ranges, error shape) and from UTF-8's encoding rules.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "serve/api_request.h"
#include "serve/text_stream.h"

namespace thinkeys::serve {
namespace {

using json = nlohmann::json;

// Status and param of the ApiError a body raises (0 when it parses).
template <typename F>
std::pair<int, std::string> error_of(F parse, const std::string& body) {
  try {
    parse(body);
  } catch (const ApiError& e) {
    const json j = json::parse(e.json());
    EXPECT_TRUE(j["error"]["message"].is_string());
    EXPECT_EQ(j["error"]["type"], e.type());
    return {e.status(),
            j["error"]["param"].is_null() ? "" : j["error"]["param"].get<std::string>()};
  }
  return {0, ""};
}

TEST(ServeApi, CompletionFieldsParse) {
  CompletionRequest r = parse_completion_request(
      R"({"model":"m","prompt":"Once","max_tokens":5,"temperature":0,"top_p":0.5,"seed":7,)"
      R"("stop":["a","bc"],"stream":true,"stream_options":{"include_usage":true},"n":1,)"
      R"("logprobs":3,"user":"ignored"})");
  EXPECT_EQ(*r.sampling.model, "m");
  EXPECT_EQ(*r.prompt_text, "Once");
  EXPECT_FALSE(r.prompt_tokens);
  EXPECT_EQ(*r.sampling.max_tokens, 5);
  EXPECT_EQ(r.sampling.temperature, 0);
  EXPECT_EQ(r.sampling.top_p, 0.5);
  EXPECT_EQ(*r.sampling.seed, 7u);
  EXPECT_EQ(r.sampling.stop, (std::vector<std::string>{"a", "bc"}));
  EXPECT_TRUE(r.sampling.stream);
  EXPECT_TRUE(r.sampling.include_usage);
  EXPECT_EQ(r.sampling.top_logprobs, 3);

  CompletionRequest t = parse_completion_request(R"({"prompt":[1,2,3],"stop":"x"})");
  EXPECT_EQ(*t.prompt_tokens, (std::vector<int32_t>{1, 2, 3}));
  EXPECT_EQ(t.sampling.stop, std::vector<std::string>{"x"});
  EXPECT_EQ(t.sampling.temperature, 1.0);  // OpenAI's default
  EXPECT_EQ(t.sampling.top_logprobs, -1);
  EXPECT_EQ(*parse_completion_request(R"({"prompt":["one"]})").prompt_text, "one");
  EXPECT_EQ(*parse_completion_request(R"({"prompt":[[4,5]]})").prompt_tokens,
            (std::vector<int32_t>{4, 5}));
  EXPECT_EQ(
      *parse_completion_request(R"({"prompt":"p","max_completion_tokens":9})").sampling.max_tokens,
      9);
}

TEST(ServeApi, CompletionErrorsNameTheField) {
  auto p = [](const std::string& b) { parse_completion_request(b); };
  EXPECT_EQ(error_of(p, "{not json").first, 400);
  EXPECT_EQ(error_of(p, "[1,2]").first, 400);
  EXPECT_EQ(error_of(p, "{}"), (std::pair<int, std::string>{400, "prompt"}));
  EXPECT_EQ(error_of(p, R"({"prompt":5})").second, "prompt");
  EXPECT_EQ(error_of(p, R"({"prompt":[1,-2]})").second, "prompt");
  EXPECT_EQ(error_of(p, R"({"prompt":[1,2.5]})").second, "prompt");
  EXPECT_EQ(error_of(p, R"({"prompt":["a","b"]})").second, "prompt");
  EXPECT_EQ(error_of(p, R"({"prompt":[]})").second, "prompt");
  EXPECT_EQ(error_of(p, R"({"prompt":"x","max_tokens":"5"})").second, "max_tokens");
  EXPECT_EQ(error_of(p, R"({"prompt":"x","max_tokens":-1})").second, "max_tokens");
  EXPECT_EQ(error_of(p, R"({"prompt":"x","max_tokens":1e30})").second, "max_tokens");
  EXPECT_EQ(error_of(p, R"({"prompt":"x","max_tokens":3,"max_completion_tokens":4})").first, 400);
  EXPECT_EQ(error_of(p, R"({"prompt":"x","temperature":2.5})").second, "temperature");
  EXPECT_EQ(error_of(p, R"({"prompt":"x","temperature":"hot"})").second, "temperature");
  EXPECT_EQ(error_of(p, R"({"prompt":"x","top_p":0})").second, "top_p");
  EXPECT_EQ(error_of(p, R"({"prompt":"x","seed":1.5})").second, "seed");
  EXPECT_EQ(error_of(p, R"({"prompt":"x","stop":["a","b","c","d","e"]})").second, "stop");
  EXPECT_EQ(error_of(p, R"({"prompt":"x","stop":[""]})").second, "stop");
  EXPECT_EQ(error_of(p, R"({"prompt":"x","stop":3})").second, "stop");
  EXPECT_EQ(error_of(p, R"({"prompt":"x","stream":"yes"})").second, "stream");
  EXPECT_EQ(error_of(p, R"({"prompt":"x","stream_options":{"include_usage":true}})").second,
            "stream_options");
  EXPECT_EQ(error_of(p, R"({"prompt":"x","n":2})").second, "n");
  EXPECT_EQ(error_of(p, R"({"prompt":"x","logprobs":21})").second, "logprobs");
  EXPECT_EQ(error_of(p, R"({"prompt":"x","echo":true})").second, "echo");
  EXPECT_EQ(error_of(p, R"({"prompt":"x","tools":[]})").second, "tools");
  EXPECT_EQ(error_of(p, R"({"prompt":"x","response_format":{"type":"json_object"}})").second,
            "response_format");
  EXPECT_EQ(error_of(p, R"({"prompt":"x","presence_penalty":0.5})").second, "presence_penalty");
  EXPECT_EQ(error_of(p, R"({"prompt":"x","model":3})").second, "model");
  // Neutral values of unimplemented fields pass, as clients send them.
  EXPECT_EQ(
      error_of(p, R"({"prompt":"x","n":1,"best_of":1,"echo":false,"presence_penalty":0})").first,
      0);
}

TEST(ServeApi, ChatFieldsAndErrors) {
  ChatRequest r = parse_chat_request(
      R"({"messages":[{"role":"system","content":"s"},)"
      R"({"role":"user","content":[{"type":"text","text":"a"},{"type":"text","text":"b"}]}],)"
      R"("logprobs":true,"top_logprobs":2,"add_generation_prompt":false})");
  ASSERT_EQ(r.messages.size(), 2u);
  EXPECT_EQ(r.messages[1].role, "user");
  EXPECT_EQ(r.messages[1].content, "ab");
  EXPECT_EQ(r.sampling.top_logprobs, 2);
  EXPECT_FALSE(r.add_generation_prompt);
  EXPECT_EQ(parse_chat_request(R"({"messages":[{"role":"user","content":"x"}],"logprobs":true})")
                .sampling.top_logprobs,
            0);
  auto p = [](const std::string& b) { parse_chat_request(b); };
  EXPECT_EQ(error_of(p, R"({"messages":[]})").second, "messages");
  EXPECT_EQ(error_of(p, R"({"messages":"hi"})").second, "messages");
  EXPECT_EQ(error_of(p, R"({"messages":[{"content":"x"}]})").second, "messages[0].role");
  EXPECT_EQ(error_of(p, R"({"messages":[{"role":"robot","content":"x"}]})").second,
            "messages[0].role");
  EXPECT_EQ(error_of(p, R"({"messages":[{"role":"user","content":5}]})").second,
            "messages[0].content");
  EXPECT_EQ(
      error_of(p, R"({"messages":[{"role":"user","content":[{"type":"image_url"}]}]})").second,
      "messages[0].content");
  EXPECT_EQ(error_of(p, R"({"messages":[{"role":"user","content":"x"}],"top_logprobs":2})").second,
            "top_logprobs");
  EXPECT_EQ(
      error_of(p, R"({"messages":[{"role":"user","content":"x"}],"tool_choice":"auto"})").second,
      "tool_choice");
}

TEST(ServeApi, TokenizeAndDetokenize) {
  TokenizeRequest t = parse_tokenize_request(R"({"content":"hi","add_special":true})");
  EXPECT_EQ(t.content, "hi");
  EXPECT_TRUE(t.add_special);
  EXPECT_EQ(parse_detokenize_request(R"({"tokens":[3,4]})").tokens, (std::vector<int32_t>{3, 4}));
  EXPECT_EQ(error_of([](auto b) { parse_tokenize_request(b); }, R"({"content":1})").second,
            "content");
  EXPECT_EQ(error_of([](auto b) { parse_detokenize_request(b); }, R"({"tokens":"a"})").second,
            "tokens");
}

TEST(ServeApi, ErrorJsonHasOpenAIsShape) {
  ApiError e(400, "too long", "invalid_request_error", "messages", "context_length_exceeded");
  const json j = json::parse(e.json());
  EXPECT_EQ(j, json::parse(R"({"error":{"message":"too long","type":"invalid_request_error",)"
                           R"("param":"messages","code":"context_length_exceeded"}})"));
  const json n = json::parse(ApiError(401, "no key", "authentication_error").json());
  EXPECT_TRUE(n["error"]["param"].is_null());
  EXPECT_TRUE(n["error"]["code"].is_null());
}

TEST(TextStream, StopStringsAreCutAndPrefixesHeldBack) {
  TextStream s({"END", "xy"});
  EXPECT_EQ(s.push("hello E"), "hello ");  // "E" may begin END
  EXPECT_EQ(s.push("N"), "");              // "EN" still may
  EXPECT_EQ(s.push("o"), "ENo");           // no longer
  EXPECT_EQ(s.push(" x"), " ");
  EXPECT_EQ(s.push("yz"), "");  // "xy" matched: cut there
  EXPECT_TRUE(s.stopped());
  EXPECT_EQ(s.push("more"), "");
  EXPECT_EQ(s.finish(), "");
  EXPECT_EQ(s.sent(), "hello ENo ");

  TextStream t({"END"});
  EXPECT_EQ(t.push("abEN"), "ab");
  EXPECT_EQ(t.finish(), "EN");  // the sequence ended: the held prefix is text after all
  EXPECT_FALSE(t.stopped());

  TextStream u({"stop"});
  EXPECT_EQ(u.push("a stop"), "a ");  // a stop inside one piece
  EXPECT_TRUE(u.stopped());
}

TEST(TextStream, PartialUtf8IsHeldUntilComplete) {
  const std::string euro = "\xE2\x82\xAC";  // U+20AC, three bytes
  TextStream s({});
  EXPECT_EQ(s.push("a\xE2"), "a");
  EXPECT_EQ(s.push("\x82"), "");
  EXPECT_EQ(s.push("\xAC"
                   "b"),
            euro + "b");
  EXPECT_EQ(s.push("\xF0\x9F"), "");      // first half of a 4-byte emoji
  EXPECT_EQ(s.finish(), "\xEF\xBF\xBD");  // never completed: U+FFFD
  EXPECT_EQ(incomplete_utf8_tail("ab"), 0u);
  EXPECT_EQ(incomplete_utf8_tail(euro), 0u);
  EXPECT_EQ(incomplete_utf8_tail("\xC3"), 1u);
  EXPECT_EQ(incomplete_utf8_tail("x\xF0\x9F\x98"), 3u);
  EXPECT_EQ(incomplete_utf8_tail("\xF0\x9F\x98\x80"), 0u);
}

}  // namespace
}  // namespace thinkeys::serve
