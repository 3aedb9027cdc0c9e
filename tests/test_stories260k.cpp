// The real stories260K checkpoint (llama2.c format, GQA, adjacent-pair RoPE)
// against its published greedy output and basic identities of the runtime.
#include <gtest/gtest.h>

#include <sstream>

#include "checkpoint/model_loader.h"
#include "eval/perplexity.h"
#include "model/kv_cache.h"
#include "model/transformer.h"
#include "runtime/generator.h"
#include "test_support.h"
#include "tokenizer/tokenizer.h"

namespace thinkeys {
namespace {

// The text block printed by `./run stories260K.bin -z tok512.bin -t 0.0` in the
// model card: the fenced lines after the command line.
std::string published_greedy_text(const std::filesystem::path& card) {
  std::istringstream in(test::read_bytes(card));
  std::string line, text;
  bool in_block = false, found = false;
  while (std::getline(in, line)) {
    if (!found) {
      if (line.find("-t 0.0") != std::string::npos && line.find("run") != std::string::npos) {
        found = in_block = true;
      }
      continue;
    }
    if (line.rfind("```", 0) == 0) break;
    if (in_block) text += (text.empty() ? "" : "\n") + line;
  }
  return text;
}

double max_relative_error(const at::Tensor& a, const at::Tensor& b) {
  return (a - b).abs().max().item<double>() / b.abs().max().item<double>();
}

TEST(Stories260K, GreedyFromBosMatchesPublishedOutput) {
  THINKEYS_REQUIRE_SHARED(model_path, "models/stories260K/stories260K.bin");
  THINKEYS_REQUIRE_SHARED(card, "models/stories260K/stories260K.md");
  const std::string expected = published_greedy_text(card);
  ASSERT_GT(expected.size(), 200u) << "could not find the reference text in the model card";
  ASSERT_EQ(expected.rfind("Once upon a time", 0), 0u);

  Model model = load_model(model_path);
  auto tok = load_tokenizer(model_path, model.config.vocab_size);
  // run.c: 256 forward steps from BOS, each printing one new token; stops at BOS.
  GenerateOptions options;
  options.max_new_tokens = 256;
  std::vector<int32_t> prompt = {1};
  auto out = generate(model, prompt, options);
  std::string text;
  int32_t prev = 1;
  for (int32_t id : out) {
    text += tok->decode_next(prev, id);
    prev = id;
  }
  // The card shows the run's stdout, which ends with a newline after the text.
  while (!text.empty() && text.back() == '\n') text.pop_back();
  EXPECT_EQ(text, expected);
}

TEST(Stories260K, HeaderIsDecoded) {
  THINKEYS_REQUIRE_SHARED(model_path, "models/stories260K/stories260K.bin");
  Model m = load_model(model_path);
  // Values from the model card's training command.
  EXPECT_EQ(m.config.dim, 64);
  EXPECT_EQ(m.config.n_layers, 5);
  EXPECT_EQ(m.config.n_heads, 8);
  EXPECT_EQ(m.config.n_kv_heads, 4);
  EXPECT_EQ(m.config.vocab_size, 512);
  EXPECT_EQ(m.config.max_positions, 512);
  EXPECT_EQ(m.config.head_dim, 8);
  // llama2.c: hidden = int(2 * (4 * 64) / 3) = 170, rounded up to multiple_of 4 = 172.
  EXPECT_EQ(m.config.hidden_dim, 172);
}

TEST(Stories260K, PrefillAndDecodeGiveTheSameLogits) {
  THINKEYS_REQUIRE_SHARED(model_path, "models/stories260K/stories260K.bin");
  Model m = load_model(model_path);
  std::vector<int32_t> tokens;
  std::mt19937 rng(3);
  for (int i = 0; i < 96; ++i) tokens.push_back(static_cast<int32_t>(rng() % 512));

  KVCache full(m.config, 96);
  at::Tensor prefill = forward(m, tokens, full);
  KVCache step(m.config, 96);
  std::vector<at::Tensor> rows;
  for (size_t i = 0; i < tokens.size(); ++i)
    rows.push_back(forward(m, std::span<const int32_t>(&tokens[i], 1), step));
  EXPECT_LE(max_relative_error(at::cat(rows, 0), prefill), 1e-4);

  // Mixed: prefill 40, then decode the rest.
  KVCache mixed(m.config, 96);
  at::Tensor head = forward(m, std::span<const int32_t>(tokens).first(40), mixed);
  std::vector<at::Tensor> tail = {head};
  for (size_t i = 40; i < tokens.size(); ++i)
    tail.push_back(forward(m, std::span<const int32_t>(&tokens[i], 1), mixed));
  EXPECT_LE(max_relative_error(at::cat(tail, 0), prefill), 1e-4);
}

TEST(Stories260K, ConvertedToHuggingFaceFormatGivesTheSameLogits) {
  // llama2.c rotates adjacent pairs; the HF layout rotates (i, i + d/2). The
  // saved checkpoint must be a standard HF Llama whose scores are unchanged.
  THINKEYS_REQUIRE_SHARED(model_path, "models/stories260K/stories260K.bin");
  Model m = load_model(model_path);
  test::TempDir dir;
  for (DType dt : {DType::F32, DType::BF16}) {
    save_model(m, dir / "hf", dt, model_path);
    Model back = load_model(dir / "hf");
    EXPECT_EQ(back.config.architecture, "LlamaForCausalLM");
    EXPECT_EQ(back.config.n_kv_heads, 4);
    std::vector<int32_t> tokens = {1, 403, 407, 261, 378, 280, 290, 376, 266, 261, 300};
    KVCache a(m.config, 16), b(back.config, 16);
    double err = max_relative_error(forward(back, tokens, b), forward(m, tokens, a));
    if (dt == DType::F32)
      EXPECT_LE(err, 1e-6);
    else
      EXPECT_LE(err, 0.1) << "bf16 weights should perturb, not break, the logits";
    EXPECT_TRUE(std::filesystem::exists(dir / "hf" / "tokenizer.bin"));
  }
}

TEST(Stories260K, CacheBytesMatchTheFormula) {
  THINKEYS_REQUIRE_SHARED(model_path, "models/stories260K/stories260K.bin");
  Model m = load_model(model_path);
  KVCache cache(m.config, 512);
  // 5 layers x 4 KV heads x (8 key + 8 value) floats x 4 bytes per token.
  EXPECT_EQ(cache.allocated_bytes(), int64_t{5} * 4 * (8 + 8) * 4 * 512);
}

TEST(Stories260K, SlidingWindowScoresEachTokenOnceWithEnoughContext) {
  THINKEYS_REQUIRE_SHARED(model_path, "models/stories260K/stories260K.bin");
  Model m = load_model(model_path);
  std::vector<int32_t> tokens = {1};
  std::mt19937 rng(5);
  for (int i = 0; i < 60; ++i) tokens.push_back(static_cast<int32_t>(rng() % 512));
  const int ctx = 16, stride = 6;

  // Second, plain implementation of the rule: token j (j >= 1) is scored by the
  // first window [b, b + ctx) with b a multiple of stride that contains it and
  // that no earlier window covered; its context is tokens [b, j).
  double expected_nll = 0;
  int64_t expected_scored = 0;
  int64_t covered_until = 0;
  for (int64_t b = 0;; b += stride) {
    int64_t e = std::min<int64_t>(b + ctx, static_cast<int64_t>(tokens.size()));
    for (int64_t j = std::max(covered_until, b + 1); j < e; ++j) {
      KVCache cache(m.config, ctx);
      at::Tensor logits = forward(m, std::span<const int32_t>(tokens).subspan(b, j - b), cache);
      at::Tensor logp = at::log_softmax(logits[j - b - 1].to(at::kDouble), 0);
      expected_nll -= logp[tokens[j]].item<double>();
      ++expected_scored;
      EXPECT_TRUE(b == 0 || j - b >= ctx - stride) << "token " << j << " has too little context";
    }
    covered_until = e;
    if (e == static_cast<int64_t>(tokens.size())) break;
  }
  PerplexityOptions opt{ctx, stride, false};
  auto r = evaluate_perplexity(m, tokens, opt);
  EXPECT_EQ(r.tokens_scored, static_cast<int64_t>(tokens.size()) - 1);
  EXPECT_EQ(r.tokens_scored, expected_scored);
  EXPECT_NEAR(r.mean_nll, expected_nll / expected_scored, 1e-6);
}

}  // namespace
}  // namespace thinkeys
