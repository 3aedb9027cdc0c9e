// The continuous-batching scheduler without HTTP, driven one iteration at a
// time. The reference for every token sequence is the dense single-sequence
// generator (runtime/generator), a separate implementation with its own cache.
#include <gtest/gtest.h>

#include <random>
#include <vector>

#include "config/cache_layout.h"
#include "model/kv_cache.h"
#include "model/random_init.h"
#include "model/transformer.h"
#include "runtime/generator.h"
#include "serve/scheduler.h"

namespace thinkeys::serve {
namespace {

ModelConfig tiny_llama() { return llama_config({61, 64, 2, 8, 2, 16, 96, 256}); }

struct Recorder : RequestSink {
  std::vector<int32_t> tokens;
  std::vector<TokenChoice> choices;
  int finishes = 0;
  FinishReason reason = FinishReason::Error;
  std::string message;
  int stop_after = -1;  // end the stream (as a stop string would) after this many tokens
  bool on_token(const TokenChoice& c) override {
    tokens.push_back(c.token);
    choices.push_back(c);
    return stop_after < 0 || static_cast<int>(tokens.size()) < stop_after;
  }
  void on_finish(FinishReason r, const std::string& m) override {
    ++finishes;
    reason = r;
    message = m;
  }
};

std::vector<int32_t> random_tokens(std::mt19937& rng, int n, int vocab) {
  std::vector<int32_t> t(n);
  for (auto& x : t) x = static_cast<int32_t>(rng() % vocab);
  return t;
}

SchedulerOptions options(int blocks, const Model& m, int block_tokens = 4) {
  SchedulerOptions o;
  o.cache = {CacheDType::F32, CacheDType::F32, 32, block_tokens, std::size_t{1} << 20};
  o.cache.budget_bytes = PagedKVCache(cache_shape(m.config), o.cache).block_bytes() * blocks;
  o.threads = 2;
  o.max_batch = 8;
  o.max_queue = 16;
  o.prefill_chunk = 64;
  return o;
}

std::vector<int32_t> reference(const Model& m, const GenerationRequest& r) {
  GenerateOptions g;
  g.max_new_tokens = r.max_new_tokens;
  g.sampling = r.sampling;
  g.stop_at_end_of_text = false;
  return generate(m, r.prompt, g);
}

void run_to_idle(Scheduler& s, int limit = 10000) {
  for (int i = 0; i < limit && !s.idle(); ++i) s.iterate();
  ASSERT_TRUE(s.idle()) << "scheduler did not drain";
}

TEST(Scheduler, AdmissionStaysWithinTheBudget) {
  Model m = random_model(tiny_llama(), 1, 0.3);
  Scheduler s(m, options(5, m));  // 5 blocks of 4 tokens
  std::mt19937 rng(2);
  std::vector<GenerationRequest> reqs;
  std::vector<std::shared_ptr<Recorder>> sinks;
  for (int i = 0; i < 4; ++i) {
    GenerationRequest r;
    r.prompt = random_tokens(rng, 7, 61);  // 2 blocks each
    r.max_new_tokens = 2;
    reqs.push_back(r);
    sinks.push_back(std::make_shared<Recorder>());
    s.submit(r, sinks.back());
  }
  EXPECT_EQ(s.metrics().waiting, 4);
  s.iterate();
  // Two prompts' 4 blocks fit the 5; the third would need 2 more.
  SchedulerMetrics mt = s.metrics();
  EXPECT_EQ(mt.running, 2);
  EXPECT_EQ(mt.waiting, 2);
  EXPECT_EQ(mt.blocks_used, 4);
  EXPECT_EQ(mt.blocks_total, 5);
  for (int i = 0; i < 10000 && !s.idle(); ++i) {
    s.iterate();
    EXPECT_LE(s.metrics().blocks_used, 5);
  }
  ASSERT_TRUE(s.idle());
  for (int i = 0; i < 4; ++i) {
    EXPECT_EQ(sinks[i]->tokens, reference(m, reqs[i])) << i;
    EXPECT_EQ(sinks[i]->reason, FinishReason::Length);
    EXPECT_EQ(sinks[i]->finishes, 1);
  }
  EXPECT_EQ(s.metrics().blocks_used, 0);
  EXPECT_EQ(s.metrics().prompt_tokens, 28u);
  EXPECT_EQ(s.metrics().generated_tokens, 8u);
}

// Admission reserves what a sequence will grow to, so the number running at
// once is the pool's blocks over the blocks of one sequence's peak, and
// nothing is preempted. 10 blocks of 4 tokens; a prompt of 5 and 8 new
// tokens peaks at 5 + 8 - 1 = 12 cached tokens (the last token sampled is
// never fed) = 3 blocks: floor(10 / 3) = 3 run, the fourth waits for one
// to finish. Reserving only the prompt (2 blocks) admits 5, which outgrow
// the pool (5 x 3 = 15 > 10 blocks) and preempt each other.
TEST(Scheduler, AdmissionReservesEachSequencesGrowth) {
  Model m = random_model(tiny_llama(), 13, 0.3);
  std::mt19937 rng(14);
  std::vector<GenerationRequest> reqs(6);
  for (auto& r : reqs) {
    r.prompt = random_tokens(rng, 5, 61);
    r.max_new_tokens = 8;
  }
  struct Case {
    int reserve_tokens, first_running;
    bool preempts;
  };
  // reserve 3: 5 + 3 = 8 tokens = 2 blocks promised, like the prompt alone.
  for (Case c : {Case{-1, 3, false}, Case{0, 5, true}, Case{3, 5, true}, Case{7, 3, false}}) {
    SchedulerOptions o = options(10, m);
    o.reserve_tokens = c.reserve_tokens;
    Scheduler s(m, o);
    std::vector<std::shared_ptr<Recorder>> sinks;
    for (const auto& r : reqs) {
      sinks.push_back(std::make_shared<Recorder>());
      s.submit(r, sinks.back());
    }
    s.iterate();
    EXPECT_EQ(s.metrics().running, c.first_running) << c.reserve_tokens;
    EXPECT_EQ(s.metrics().waiting, 6 - c.first_running) << c.reserve_tokens;
    int most = 0;
    for (int i = 0; i < 10000 && !s.idle(); ++i) {
      s.iterate();
      most = std::max(most, s.metrics().running);
      EXPECT_LE(s.metrics().blocks_used, 10);
    }
    ASSERT_TRUE(s.idle());
    EXPECT_EQ(s.metrics().running_peak, std::max(most, c.first_running));
    if (c.preempts) {
      EXPECT_GT(s.metrics().preemptions, 0u) << c.reserve_tokens;
    } else {
      EXPECT_EQ(s.metrics().preemptions, 0u) << c.reserve_tokens;
      EXPECT_EQ(s.metrics().running_peak, 3) << c.reserve_tokens;
    }
    for (std::size_t i = 0; i < reqs.size(); ++i)
      EXPECT_EQ(sinks[i]->tokens, reference(m, reqs[i])) << i << " reserve " << c.reserve_tokens;
    EXPECT_EQ(s.cache().free_blocks(), s.cache().total_blocks());
  }
}

// Three sequences that together outgrow the pool: the youngest is preempted
// (blocks freed, tokens kept), recomputed later, and every sequence still
// ends with exactly the tokens it produces alone, greedy or sampled.
TEST(Scheduler, PreemptedSequencesFinishWithTheirUninterruptedTokens) {
  Model m = random_model(tiny_llama(), 3, 0.3);
  for (double temperature : {0.0, 0.9}) {
    SchedulerOptions o = options(12, m);  // 48 tokens; each request peaks at 6 + 19 = 25
    o.reserve_tokens = 0;                 // admit on the prompt alone, so they outgrow the pool
    Scheduler s(m, o);
    std::mt19937 rng(4);
    std::vector<GenerationRequest> reqs;
    std::vector<std::shared_ptr<Recorder>> sinks;
    for (int i = 0; i < 3; ++i) {
      GenerationRequest r;
      r.prompt = random_tokens(rng, 6, 61);
      r.max_new_tokens = 20;
      r.sampling = {temperature, 0.95, 100u + i};
      reqs.push_back(r);
      sinks.push_back(std::make_shared<Recorder>());
      s.submit(r, sinks.back());
    }
    run_to_idle(s);
    EXPECT_GT(s.metrics().preemptions, 0u) << "the pool was meant to run out";
    for (int i = 0; i < 3; ++i) {
      EXPECT_EQ(sinks[i]->tokens, reference(m, reqs[i])) << "request " << i << " t " << temperature;
      EXPECT_EQ(sinks[i]->reason, FinishReason::Length);
    }
    EXPECT_EQ(s.metrics().blocks_used, 0);
  }
}

TEST(Scheduler, CancelReturnsEveryBlock) {
  Model m = random_model(tiny_llama(), 5, 0.3);
  SchedulerOptions o = options(40, m);
  o.reserve_tokens = 0;  // all five run at once (their 50 tokens would need 75 blocks)
  Scheduler s(m, o);
  std::mt19937 rng(6);
  std::vector<std::shared_ptr<Ticket>> tickets;
  std::vector<std::shared_ptr<Recorder>> sinks;
  for (int i = 0; i < 5; ++i) {
    GenerationRequest r;
    r.prompt = random_tokens(rng, 9 + i, 61);
    r.max_new_tokens = 50;
    sinks.push_back(std::make_shared<Recorder>());
    tickets.push_back(s.submit(r, sinks.back()));
  }
  for (int i = 0; i < 3; ++i) s.iterate();
  EXPECT_GT(s.metrics().blocks_used, 0);
  tickets[1]->cancel();
  s.iterate();
  EXPECT_EQ(sinks[1]->reason, FinishReason::Cancelled);
  EXPECT_EQ(sinks[1]->finishes, 1);
  EXPECT_EQ(s.metrics().running, 4);
  for (auto& t : tickets) t->cancel();
  s.iterate();
  EXPECT_TRUE(s.idle());
  EXPECT_EQ(s.metrics().blocks_used, 0);
  EXPECT_EQ(s.metrics().requests_cancelled, 5u);
  EXPECT_EQ(s.cache().free_blocks(), s.cache().total_blocks());
  EXPECT_EQ(s.cache().sequences(), 0);
  for (auto& r : sinks) {
    EXPECT_EQ(r->reason, FinishReason::Cancelled);
    EXPECT_EQ(r->finishes, 1);
  }
  // A sink that stops the stream (a stop string) ends it too, blocks freed.
  auto stopper = std::make_shared<Recorder>();
  stopper->stop_after = 3;
  GenerationRequest r;
  r.prompt = random_tokens(rng, 5, 61);
  r.max_new_tokens = 30;
  s.submit(r, stopper);
  run_to_idle(s);
  EXPECT_EQ(stopper->tokens.size(), 3u);
  EXPECT_EQ(stopper->reason, FinishReason::Stop);
  EXPECT_EQ(s.cache().free_blocks(), s.cache().total_blocks());
}

TEST(Scheduler, QueueLimitAndRequestLimitsHold) {
  Model m = random_model(tiny_llama(), 7, 0.3);
  SchedulerOptions o = options(10, m);
  o.max_batch = 1;
  o.max_queue = 2;
  o.ctx = 30;
  Scheduler s(m, o);
  auto sink = std::make_shared<Recorder>();
  GenerationRequest r;
  r.prompt = {1, 2, 3};
  r.max_new_tokens = 5;
  s.submit(r, sink);
  s.submit(r, sink);
  auto kind = [&](GenerationRequest q) {
    try {
      s.submit(q, std::make_shared<Recorder>());
    } catch (const Rejected& e) {
      return static_cast<int>(e.kind());
    }
    return -1;
  };
  EXPECT_EQ(kind(r), static_cast<int>(Rejected::Kind::QueueFull));
  EXPECT_EQ(s.metrics().waiting, 2);
  EXPECT_EQ(s.metrics().requests_refused, 1u);
  s.iterate();  // one runs, one waits: room for one more
  EXPECT_EQ(s.metrics().running, 1);
  EXPECT_EQ(kind(r), -1);
  EXPECT_EQ(kind(r), static_cast<int>(Rejected::Kind::QueueFull));

  GenerationRequest too_long = r;
  too_long.prompt.assign(30, 1);  // the context is 30: nothing left to generate
  EXPECT_EQ(kind(too_long), static_cast<int>(Rejected::Kind::ContextLength));
  GenerationRequest too_big = r;
  too_big.prompt.assign(20, 1);
  too_big.max_new_tokens = 25;  // clamped to the context: 20 + 9 = 29 < 40 tokens
  run_to_idle(s);
  EXPECT_EQ(kind(too_big), -1);
  Scheduler small(m, options(4, m));  // 16 tokens
  GenerationRequest big = r;
  big.prompt.assign(10, 1);
  big.max_new_tokens = 8;  // peaks at 17 cached tokens
  try {
    small.submit(big, sink);
    FAIL();
  } catch (const Rejected& e) {
    EXPECT_EQ(e.kind(), Rejected::Kind::ContextLength);
  }
  big.max_new_tokens = 7;
  EXPECT_NO_THROW(small.submit(big, sink));
  GenerationRequest bad = r;
  bad.prompt = {61};
  EXPECT_EQ(kind(bad), static_cast<int>(Rejected::Kind::Invalid));
  bad.prompt = {};
  EXPECT_EQ(kind(bad), static_cast<int>(Rejected::Kind::Invalid));
  bad = r;
  bad.sampling.top_p = 0;
  EXPECT_EQ(kind(bad), static_cast<int>(Rejected::Kind::Invalid));
  run_to_idle(s);
  s.stop(false);
  EXPECT_EQ(kind(r), static_cast<int>(Rejected::Kind::Stopping));
}

// A long prompt prefilled in chunks of 4 joins a running stream: the stream
// gets a token at every iteration meanwhile, and both match the reference.
// Log-probabilities are those of the model's softmax.
TEST(Scheduler, ChunkedPrefillKeepsRunningStreamsFlowing) {
  Model m = random_model(tiny_llama(), 9, 0.3);
  SchedulerOptions o = options(64, m);
  o.prefill_chunk = 4;
  Scheduler s(m, o);
  std::mt19937 rng(10);
  GenerationRequest a, b;
  a.prompt = random_tokens(rng, 3, 61);
  a.max_new_tokens = 30;
  a.top_logprobs = 3;
  b.prompt = random_tokens(rng, 41, 61);
  b.max_new_tokens = 5;
  auto ra = std::make_shared<Recorder>(), rb = std::make_shared<Recorder>();
  s.submit(a, ra);
  s.iterate();
  ASSERT_EQ(ra->tokens.size(), 1u);
  s.submit(b, rb);
  for (int i = 0; i < 11; ++i) {  // 41 tokens in chunks of 4
    s.iterate();
    EXPECT_EQ(ra->tokens.size(), 2u + i);
    EXPECT_EQ(rb->tokens.size(), i == 10 ? 1u : 0u);
  }
  run_to_idle(s);
  EXPECT_EQ(ra->tokens, reference(m, a));
  EXPECT_EQ(rb->tokens, reference(m, b));

  // Log-probabilities, against log_softmax of the dense model's logits.
  ASSERT_FALSE(ra->choices.empty());
  KVCache dense(m.config, 8);
  at::Tensor lp = at::log_softmax(forward(m, a.prompt, dense, Logits::Last)[0], 0);
  const TokenChoice& first = ra->choices[0];
  EXPECT_NEAR(first.logprob, lp[first.token].item<float>(), 1e-4);
  auto [vals, idx] = lp.topk(3);
  ASSERT_EQ(first.top.size(), 3u);
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(first.top[i].first, idx[i].item<int64_t>());
    EXPECT_NEAR(first.top[i].second, vals[i].item<float>(), 1e-4);
  }
}

TEST(Scheduler, StopTokensEndTheSequenceUnemitted) {
  Model m = random_model(tiny_llama(), 11, 0.3);
  Scheduler s(m, options(64, m));
  GenerationRequest r;
  r.prompt = {4, 5, 6};
  r.max_new_tokens = 12;
  const std::vector<int32_t> free_run = reference(m, r);
  ASSERT_EQ(free_run.size(), 12u);
  r.stop_tokens = {free_run[4]};
  auto rec = std::make_shared<Recorder>();
  s.submit(r, rec);
  run_to_idle(s);
  const auto first_stop = std::find(free_run.begin(), free_run.end(), free_run[4]);
  EXPECT_EQ(rec->tokens, std::vector<int32_t>(free_run.begin(), first_stop));
  EXPECT_EQ(rec->reason, FinishReason::Stop);
}

}  // namespace
}  // namespace thinkeys::serve
