// `thinkeys chat` in a real terminal: tmux runs it, send-keys types two
// turns, capture-pane reads what it printed. The second turn must prefill
// only the tokens after what the cache already holds, which is checked
// against prompt lengths from `thinkeys tokenize` of the same conversation.
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <nlohmann/json.hpp>
#include <regex>
#include <string>
#include <thread>
#include <vector>

#include "test_support.h"

namespace thinkeys {
namespace {

using Json = nlohmann::ordered_json;
using test::TempDir;

bool in_ci() {
  const char* ci = std::getenv("CI");
  return ci && std::string(ci) == "true";
}

std::string run(const std::string& cmd) {
  std::string out;
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) return out;
  char buf[4096];
  std::size_t n = 0;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  pclose(p);
  return out;
}

std::string quote(const std::string& s) {
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

struct Prefill {
  int fresh, reused, context;
};

std::vector<Prefill> prefills(const std::string& pane) {
  std::vector<Prefill> out;
  const std::regex re(R"(\[prefill (\d+) new tokens, (\d+) reused from cache, (\d+) in context)");
  for (auto it = std::sregex_iterator(pane.begin(), pane.end(), re); it != std::sregex_iterator();
       ++it) {
    out.push_back({std::stoi((*it)[1]), std::stoi((*it)[2]), std::stoi((*it)[3])});
  }
  return out;
}

std::vector<int> generated_counts(const std::string& pane) {
  std::vector<int> out;
  const std::regex re(R"(\[(\d+) tokens at )");
  for (auto it = std::sregex_iterator(pane.begin(), pane.end(), re); it != std::sregex_iterator();
       ++it) {
    out.push_back(std::stoi((*it)[1]));
  }
  return out;
}

class Tmux {
 public:
  explicit Tmux(const std::string& command)
      : socket_("thinkeys-chat-test-" + std::to_string(getpid())) {
    run("tmux -L " + socket_ + " new-session -d -s chat -x 160 -y 60 " + quote(command) + " 2>&1");
  }
  ~Tmux() { run("tmux -L " + socket_ + " kill-server 2>/dev/null"); }
  void type(const std::string& text) {
    run("tmux -L " + socket_ + " send-keys -t chat -l " + quote(text));
    run("tmux -L " + socket_ + " send-keys -t chat Enter");
  }
  std::string pane() const {
    return run("tmux -L " + socket_ + " capture-pane -p -J -S - -t chat 2>/dev/null");
  }
  // Polls the pane until `done(pane)` or 60 s pass.
  template <class F>
  bool wait_for(F done) const {
    for (int i = 0; i < 600; ++i) {
      if (done(pane())) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    return false;
  }

 private:
  std::string socket_;
};

int prompt_tokens(const std::string& cli, const std::string& model, const Json& messages,
                  const TempDir& dir) {
  test::write_bytes(dir / "messages.json", messages.dump());
  const std::string out = run(quote(cli) + " tokenize " + quote(model) +
                              " --chat-template chatml --add-generation-prompt --json --messages " +
                              quote((dir / "messages.json").string()));
  const Json j = Json::parse(out, nullptr, false);
  if (j.is_discarded() || !j.contains("ids")) {
    ADD_FAILURE() << "tokenize failed: " << out;
    return -1;
  }
  return static_cast<int>(j["ids"].size());
}

TEST(ChatCli, SecondTurnPrefillsOnlyTheNewTokens) {
  THINKEYS_REQUIRE_SHARED(model, "models/stories260K/stories260K.bin");
  if (std::system("tmux -V >/dev/null 2>&1") != 0) {
    if (in_ci()) FAIL() << "tmux is missing (CI=true)";
    GTEST_SKIP() << "tmux is missing (apt-get install tmux)";
  }
  const std::string cli = THINKEYS_CLI_PATH;
  TempDir dir;
  const std::string transcript = (dir / "transcript.json").string();
  Tmux tmux(
      quote(cli) + " chat " + quote(model.string()) +
      " --chat-template chatml --system 'You tell stories.' -n 24 --cache-k int8 --cache-v f16"
      " --transcript " +
      quote(transcript) + "; sleep 30");
  ASSERT_TRUE(tmux.wait_for([](const std::string& p) { return p.find("> ") != std::string::npos; }))
      << tmux.pane();
  tmux.type("Once upon a time there was a cat.");
  ASSERT_TRUE(tmux.wait_for([](const std::string& p) { return generated_counts(p).size() == 1; }))
      << tmux.pane();
  tmux.type("What did the cat do next?");
  ASSERT_TRUE(tmux.wait_for([](const std::string& p) { return generated_counts(p).size() == 2; }))
      << tmux.pane();
  // The transcript is rewritten after every answer; after the second it
  // holds the system prompt and two exchanges.
  ASSERT_TRUE(tmux.wait_for([&](const std::string&) {
    const Json t = Json::parse(test::read_bytes(transcript), nullptr, false);
    return !t.is_discarded() && t.size() == 5;
  }));
  tmux.type("/exit");
  const std::string pane = tmux.pane();

  const std::vector<Prefill> p = prefills(pane);
  const std::vector<int> gen = generated_counts(pane);
  ASSERT_EQ(p.size(), 2u) << pane;
  ASSERT_EQ(gen.size(), 2u) << pane;
  const Json conversation = Json::parse(test::read_bytes(transcript));
  ASSERT_EQ(conversation.size(), 5u) << conversation.dump(1);  // system, 2 x (user, assistant)

  // Prompt lengths of both turns, independently from `tokenize`.
  Json first(conversation.begin(), conversation.begin() + 2);
  Json second(conversation.begin(), conversation.begin() + 4);
  const int t1 = prompt_tokens(cli, model.string(), first, dir);
  const int t2 = prompt_tokens(cli, model.string(), second, dir);
  EXPECT_EQ(p[0].fresh, t1) << pane;
  EXPECT_EQ(p[0].reused, 0);
  EXPECT_EQ(p[1].context, t2) << pane;
  EXPECT_EQ(p[1].fresh + p[1].reused, t2);
  // The cache held the first prompt and the first answer; all of it is
  // reused (greedy tokens of this model re-tokenize to themselves), and
  // only the rest of the second prompt is prefilled.
  EXPECT_EQ(p[1].reused, t1 + gen[0]) << pane;
  EXPECT_EQ(p[1].fresh, t2 - t1 - gen[0]) << pane;
  EXPECT_LT(p[1].fresh, t2 / 2);
}

// Bad input to tokenize and chat: one clear line on stderr, non-zero exit.
TEST(ChatCli, BadMessagesAndTemplatesFailClearly) {
  THINKEYS_REQUIRE_SHARED(model, "models/stories260K/stories260K.bin");
  const std::string cli = THINKEYS_CLI_PATH;
  TempDir dir;
  auto fails_with = [&](const std::string& args, const std::string& expect) {
    const std::string cmd = quote(cli) + " " + args + " 2>&1 >/dev/null; echo \"rc=$?\"";
    const std::string out = run(cmd);
    EXPECT_NE(out.find(expect), std::string::npos) << args << "\n" << out;
    EXPECT_EQ(out.find("rc=0"), std::string::npos) << args << "\n" << out;
  };
  const std::string m = quote(model.string());
  test::write_bytes(dir / "truncated.json", R"([{"role": "user", "content": "hi")");
  test::write_bytes(dir / "no_role.json", R"([{"content": "hi"}])");
  test::write_bytes(dir / "not_list.json", R"({"role": "user"})");
  test::write_bytes(dir / "ok.json", R"([{"role": "user", "content": "hi"}])");
  test::write_bytes(dir / "bad.jinja", "{% for m in messages %}{{ m.content }}");
  // tokenize MODEL --messages FILE [--chat-template TEMPLATE]
  auto messages = [&](const std::string& file, const std::string& chat_template) {
    return "tokenize " + m + " --messages " + quote((dir / file).string()) +
           (chat_template.empty() ? "" : " --chat-template " + chat_template);
  };
  fails_with(messages("truncated.json", "chatml"), "is not valid JSON");
  fails_with(messages("no_role.json", "chatml"), "chat message 0 has no \"role\" string");
  fails_with(messages("not_list.json", "chatml"), "must be a JSON array");
  fails_with(messages("ok.json", ""), "the model has no chat template");
  fails_with(messages("ok.json", quote((dir / "bad.jinja").string())),
             "line 1: {% for %} is never closed");
  fails_with(messages("ok.json", "nosuch"), "neither a built-in template");
  fails_with(messages("missing.json", "chatml"), "cannot read messages file");
  fails_with("tokenize " + m, "tokenize needs --text TEXT or --messages FILE.json");
  fails_with("chat " + m + " < /dev/null", "the model has no chat template");
}

}  // namespace
}  // namespace thinkeys
