// Batched decode over the paged cache against the dense forward pass run on
// each sequence alone: same logits (1e-4 relative for an f32 cache) while
// sequences of different lengths join and leave between steps.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "compress/compressor.h"
#include "config/cache_layout.h"
#include "eval/paged_logits.h"
#include "eval/perplexity.h"
#include "huge_page_check.h"
#include "model/kv_cache.h"
#include "model/random_init.h"
#include "model/transformer.h"
#include "model/weight_format.h"
#include "runtime/batch_decoder.h"
#include "runtime/batch_generator.h"
#include "runtime/generator.h"
#include "runtime/logits_tensor.h"
#include "util/error.h"
#include "util/huge_page_memory.h"

namespace thinkeys {
namespace {

ModelConfig tiny_llama() {
  return llama_config({61, 64, 2, 8, 2, 16, 96, 512});  // GQA 4
}

ModelConfig tiny_gpt2() { return gpt2_config({61, 48, 2, 4, 4, 12, 96, 128}); }

std::vector<int32_t> tokens(std::mt19937& rng, int n, int vocab) {
  std::vector<int32_t> t(n);
  for (auto& x : t) x = static_cast<int32_t>(rng() % vocab);
  return t;
}

double rel_err(const at::Tensor& a, const at::Tensor& b) {
  return (a - b).abs().max().item<double>() / b.abs().max().item<double>();
}

struct Dense {
  std::unique_ptr<KVCache> cache;
  at::Tensor last;  // [1, V]
};

// Who steps when: prompts of `first`'s lengths start together; before step
// s, prompts of join[s]'s lengths start, then the leave[s] oldest sequences
// leave.
struct Schedule {
  std::vector<int> first{5, 13, 1};
  std::map<int, std::vector<int>> join{{4, {7}}};
  std::map<int, int> leave{{9, 1}};
  int steps = 16;
};

// Runs the schedule's sequences through both paths, each step's rows against
// the dense forward pass of each sequence alone; `rows` gets each step's
// number of rows.
double max_batched_error(const Model& m, CacheSpec spec, const Schedule& sc,
                         std::vector<int>* rows = nullptr) {
  std::mt19937 rng(5);
  const int V = m.config.vocab_size;
  BatchDecoder dec(m, {spec, 2});
  std::map<int, Dense> dense;  // by decoder id
  double worst = 0;
  auto start = [&](int n) {
    auto prompt = tokens(rng, n, V);
    Dense d{std::make_unique<KVCache>(m.config, 128), {}};
    d.last = forward(m, prompt, *d.cache, Logits::Last);
    std::vector<float> first;
    int id = dec.add(prompt, &first);
    worst = std::max(worst, rel_err(logits_tensor(first), d.last));
    dense[id] = std::move(d);
  };
  for (int n : sc.first) start(n);
  for (int s = 0; s < sc.steps; ++s) {
    if (auto j = sc.join.find(s); j != sc.join.end())
      for (int n : j->second) start(n);
    if (auto l = sc.leave.find(s); l != sc.leave.end())
      for (int k = 0; k < l->second; ++k) {
        dec.remove(dense.begin()->first);
        dense.erase(dense.begin());
      }
    std::vector<int> ids;
    std::vector<int32_t> next;
    for (auto& [id, d] : dense) {
      ids.push_back(id);
      // Greedy on the dense logits, with some noise so tokens vary.
      next.push_back(static_cast<int32_t>((d.last.argmax().item<int64_t>() + rng() % 3) % V));
    }
    if (rows) rows->push_back(static_cast<int>(ids.size()));
    at::Tensor logits = logits_tensor(dec.step(ids, next));
    EXPECT_EQ(logits.size(0), static_cast<int64_t>(ids.size()));
    for (size_t i = 0; i < ids.size(); ++i) {
      Dense& d = dense[ids[i]];
      d.last = forward(m, std::span<const int32_t>(&next[i], 1), *d.cache, Logits::Last);
      EXPECT_EQ(dec.length(ids[i]), d.cache->length());
      worst = std::max(worst, rel_err(logits[i].unsqueeze(0), d.last));
    }
  }
  return worst;
}

// Prompts of lengths 5, 13, 1 start together, a fourth joins after 4 steps,
// the first leaves after 9.
double max_batched_error(const Model& m, CacheSpec spec, int steps = 16) {
  Schedule sc;
  sc.steps = steps;
  return max_batched_error(m, spec, sc);
}

CacheSpec f32_spec(int block_tokens = 4) {
  return {CacheDType::F32, CacheDType::F32, 32, block_tokens, std::size_t{8} << 20};
}

// More sequences than one GEMV tile holds (kSmallGemmMaxRows) step through
// the same fused path as a few: twenty prompts of different lengths, the
// batch crossing 16 as sequences join and leave, each row against the dense
// forward pass of its sequence alone (f32 weights and cache: summation order
// only).
TEST(BatchDecoder, ManySequencesStepTogetherAsEachAlone) {
  const Model m = random_model(tiny_llama(), 8, 0.1);
  ASSERT_TRUE(BatchDecoder(m, {f32_spec(), 2}).uses_fused_step());
  Schedule sc;
  sc.first.clear();
  for (int i = 0; i < 15; ++i) sc.first.push_back(1 + i % 7);
  sc.join = {{2, {3, 4, 5, 6, 7}}};  // 20 rows
  sc.leave = {{5, 3}};               // 17 rows
  sc.steps = 8;
  std::vector<int> rows;
  EXPECT_LT(max_batched_error(m, f32_spec(), sc, &rows), 1e-4);
  EXPECT_EQ(rows, (std::vector<int>{15, 15, 20, 20, 20, 17, 17, 17}));
}

TEST(BatchDecoder, FullWidthGqaMatchesDense) {
  Model m = random_model(tiny_llama(), 1, 0.1);
  for (int bt : {1, 4, 16}) EXPECT_LT(max_batched_error(m, f32_spec(bt)), 1e-4) << "block " << bt;
}

// More query heads per key head than one attention task takes (72 and 130
// against kMaxQueries = 64, one KV head): a key head's queries go in several
// tasks over the same rows, and every step still matches the dense forward
// pass, on the fused step, the libtorch pass and thin keys in every RoPE
// mode whose value heads are not shared.
TEST(BatchDecoder, MoreQueryHeadsPerKeyHeadThanATaskTakes) {
  for (int heads : {72, 130}) {
    const ModelConfig c = llama_config({61, 64, 2, heads, 1, 4, 96, 512});
    const Model m = random_model(c, 9, 0.1);
    BatchDecoder probe(m, {f32_spec(), 1});
    EXPECT_EQ(probe.attention_shape().max_queries, 64);
    EXPECT_EQ(probe.attention_shape().max_heads, heads > 128 ? 3 : 2);
    EXPECT_LT(max_batched_error(m, f32_spec(), 6), 1e-4) << heads << " heads";
    for (RopeMode mode : {RopeMode::Post, RopeMode::Latent, RopeMode::Pairs}) {
      CompressOptions o;
      o.method = CompressMethod::Svd;
      o.rope = mode;
      o.ranks.key_rank = 2;
      o.calibration.show_progress = false;
      const Model t = compress_model(m, o, {});
      EXPECT_LT(max_batched_error(t, f32_spec(), 6), 1e-4) << to_string(mode) << " " << heads;
    }
  }
  // The libtorch pass builds its tasks the same way.
  const Model m = random_model(llama_config({61, 64, 1, 72, 1, 4, 96, 512}), 10, 0.1);
  std::mt19937 rng(3);
  const auto prompt = tokens(rng, 9, 61);
  KVCache dense(m.config, 16);
  const at::Tensor want = forward(m, prompt, dense, Logits::Last);
  BatchDecoderOptions o{f32_spec(), 1};
  o.fused = false;
  BatchDecoder dec(m, o);
  std::vector<float> first;
  dec.add(prompt, &first);
  EXPECT_LT(rel_err(logits_tensor(first), want), 1e-4);
}

// Latent keys shared by value heads split a task's queries between them, so
// past kMaxQueries query heads per key head the decoder refuses the model
// when it is built, with the reason.
TEST(BatchDecoder, SharedLatentKeysPastATasksQueriesAreRefused) {
  const Model m = random_model(llama_config({61, 64, 1, 136, 2, 4, 96, 512}), 11, 0.1);
  CompressOptions o;
  o.method = CompressMethod::Svd;
  o.rope = RopeMode::Latent;
  o.share = 2;
  o.ranks.key_rank = 4;
  o.calibration.show_progress = false;
  const Model t = compress_model(m, o, {});
  try {
    BatchDecoder dec(t, {f32_spec(), 1});
    FAIL() << "built a decoder for 136 query heads on one shared latent key head";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("at most 64 query heads per key head, not 136"),
              std::string::npos)
        << e.what();
  }
}

TEST(BatchDecoder, ThinKeysPerLayerRanksMatchDense) {
  ModelConfig c = tiny_llama();
  c.key_rank = {4, 8};  // RoPE on the thin dimensions (Full mode), rank differs by layer
  for (RopeTable table : {RopeTable::HeadDim, RopeTable::KeyWidth}) {
    c.rope_table = table;
    Model m = random_model(c, 2, 0.1);
    EXPECT_LT(max_batched_error(m, f32_spec()), 1e-4) << to_string(table);
  }
}

TEST(BatchDecoder, CompressedRopeModesMatchDense) {
  Model m = random_model(tiny_llama(), 3, 0.1);
  for (RopeMode mode : {RopeMode::Post, RopeMode::Latent, RopeMode::Pairs})
    for (int share : {1, 2}) {
      if (mode == RopeMode::Pairs && share > 1) continue;
      CompressOptions o;
      o.method = CompressMethod::Svd;
      o.rope = mode;
      o.share = share;
      o.ranks.key_rank = 4 * share;
      o.calibration.show_progress = false;
      Model t = compress_model(m, o, {});
      // Every step here has at most 4 rows, so the fused step runs it (the
      // reference is the dense libtorch forward pass; both f32).
      EXPECT_TRUE(BatchDecoder(t, {f32_spec(), 1}).uses_fused_step()) << to_string(mode);
      EXPECT_LT(max_batched_error(t, f32_spec()), 1e-4) << to_string(mode) << " share " << share;
    }
}

TEST(BatchDecoder, LearnedPositionsAndSlidingWindowMatchDense) {
  Model g = random_model(tiny_gpt2(), 4, 0.1);
  EXPECT_LT(max_batched_error(g, f32_spec()), 1e-4);
  ModelConfig c = tiny_llama();
  c.sliding_window = 6;
  Model w = random_model(c, 5, 0.1);
  EXPECT_LT(max_batched_error(w, f32_spec()), 1e-4);
}

// Bound on the relative error of one stored element, against the largest
// magnitude in its row (floats) or scale group (integers), from each dtype's
// rounding:
//   f16:  round to nearest with an 11-bit significand: 2^-11.
//   bf16: 8-bit significand: 2^-8.
//   int8: levels max/127 apart, rounded to nearest: 1/(2*127), plus the f16
//         scale's own rounding 2^-11.
//   int4: levels max/7 apart: 1/(2*7) + 2^-11.
double storage_error_bound(CacheDType t) {
  switch (t) {
    case CacheDType::F16:
      return std::ldexp(1.0, -11);
    case CacheDType::BF16:
      return std::ldexp(1.0, -8);
    case CacheDType::Int8:
      return 1.0 / (2 * 127) + std::ldexp(1.0, -11);
    case CacheDType::Int4:
      return 1.0 / (2 * 7) + std::ldexp(1.0, -11);
    default:
      return 0.0;
  }
}

TEST(BatchDecoder, QuantizedCacheErrorIsBoundedByTheDtypesRounding) {
  // How a storage error e (relative, as above) reaches the logits: values
  // carry it straight into each attention output (<= e); keys move each score
  // by <= e |q| |k| / sqrt(d), i.e. by e times the scores' scale |s|, which
  // moves the softmax weights by a relative <= 2 e max|s| and so the output
  // by <= 2 e max|s| max|v|. With these random
  // weights (std 0.1) scores stay around 1, so a layer adds about 3e; two
  // layers 6e, and the final norm and LM head pass a relative error on
  // without amplifying it. The factor depends on the model, not the dtype, so
  // one bound, 6e, serves every dtype (measured here: 0.8e-1.8e; int8 keys
  // scored in integers, decode_attention_integer_scores, 2.0e: the query's
  // int8 rounding adds about as much as the keys'). A cache that
  // stored f16 with bf16 rounding (8x the f16 error) or int8 as int4 (16x)
  // fails it.
  Model m = random_model(tiny_llama(), 6, 0.1);
  for (CacheDType t : {CacheDType::F16, CacheDType::BF16, CacheDType::Int8, CacheDType::Int4}) {
    CacheSpec s{t, t, 8, 4, std::size_t{8} << 20};
    const double err = max_batched_error(m, s, 6), bound = 6 * storage_error_bound(t);
    std::printf("%s cache: logit error %.3g, %.2f of the per-element bound %.3g\n", to_string(t),
                err, err / storage_error_bound(t), storage_error_bound(t));
    EXPECT_LT(err, bound) << to_string(t);
    EXPECT_GT(err, 0.0) << to_string(t) << ": a rounding cache cannot be exact";
  }
}

// Chunked prefill: a prompt fed as add(first chunk) + extend(...) of uneven
// chunks must give the logits of add(whole prompt) after every chunk and the
// same decode steps afterwards; with an f32 cache both paths attend to the
// same stored rows, so they agree up to summation order. The dense forward
// pass over the whole prompt is the independent reference.
double max_chunked_error(const Model& m, CacheSpec spec, std::vector<int> chunks) {
  std::mt19937 rng(21);
  const int V = m.config.vocab_size;
  int n = 0;
  for (int k : chunks) n += k;
  auto prompt = tokens(rng, n, V);
  BatchDecoder dec(m, {spec, 2});
  const int other = dec.add(tokens(rng, 9, V));  // a neighbour whose blocks interleave
  double worst = 0;
  KVCache dense(m.config, n + 8);
  std::vector<float> got;
  int id = -1, done = 0;
  for (int k : chunks) {
    std::span<const int32_t> piece(prompt.data() + done, k);
    if (id < 0)
      id = dec.add(piece, &got);
    else
      dec.extend(id, piece, &got);
    // The neighbour steps between chunks, as it would in a server.
    dec.step(std::vector<int>{other}, std::vector<int32_t>{1});
    at::Tensor want = forward(m, piece, dense, Logits::Last);
    done += k;
    EXPECT_EQ(dec.length(id), done);
    EXPECT_EQ(static_cast<int>(got.size()), V);
    worst = std::max(worst, rel_err(logits_tensor(got), want));
  }
  for (int s = 0; s < 4; ++s) {
    std::vector<int32_t> next = {static_cast<int32_t>((s * 7 + 3) % V)};
    at::Tensor a = logits_tensor(dec.step(std::vector<int>{id}, next));
    at::Tensor b = forward(m, next, dense, Logits::Last);
    worst = std::max(worst, rel_err(a, b));
  }
  return worst;
}

TEST(BatchDecoder, ExtendInChunksMatchesWholePrompt) {
  const std::vector<int> chunks = {3, 1, 6, 4, 9, 2};  // 25 tokens across 4-token blocks
  Model m = random_model(tiny_llama(), 31, 0.1);
  for (int bt : {1, 4, 16}) EXPECT_LT(max_chunked_error(m, f32_spec(bt), chunks), 1e-4) << bt;

  ModelConfig thin = tiny_llama();
  thin.key_rank = {4, 8};
  EXPECT_LT(max_chunked_error(random_model(thin, 32, 0.1), f32_spec(), chunks), 1e-4);
  for (RopeMode mode : {RopeMode::Post, RopeMode::Latent, RopeMode::Pairs}) {
    CompressOptions o;
    o.method = CompressMethod::Svd;
    o.rope = mode;
    o.share = mode == RopeMode::Latent ? 2 : 1;
    o.ranks.key_rank = 4 * o.share;
    o.calibration.show_progress = false;
    Model t = compress_model(m, o, {});
    EXPECT_LT(max_chunked_error(t, f32_spec(), chunks), 1e-4) << to_string(mode);
  }
  Model g = random_model(tiny_gpt2(), 33, 0.1);  // learned positions
  EXPECT_LT(max_chunked_error(g, f32_spec(), chunks), 1e-4);
  ModelConfig sw = tiny_llama();
  sw.sliding_window = 6;  // the window reaches back across chunk boundaries
  EXPECT_LT(max_chunked_error(random_model(sw, 34, 0.1), f32_spec(), chunks), 1e-4);

  // Quantized caches: chunks read the prefix as stored, so only closeness.
  for (CacheDType t : {CacheDType::Int8, CacheDType::Int4}) {
    CacheSpec s{t, CacheDType::F16, 8, 4, std::size_t{8} << 20};
    EXPECT_LT(max_chunked_error(m, s, chunks), t == CacheDType::Int4 ? 0.2 : 0.05) << to_string(t);
  }
}

TEST(BatchDecoder, ExtendRefusesBadInputWithoutChangingTheSequence) {
  Model m = random_model(tiny_llama(), 35, 0.1);
  CacheSpec probe = f32_spec(4);
  CacheSpec spec = probe;
  spec.budget_bytes = PagedKVCache(cache_shape(m.config), probe).block_bytes() * 3;
  BatchDecoder dec(m, {spec, 1});
  std::mt19937 rng(36);
  auto prompt = tokens(rng, 5, 61);
  const int id = dec.add(prompt);  // 2 blocks of 3
  const std::vector<int32_t> bad = {1, 61}, empty, long_chunk(8, 2);
  EXPECT_THROW(dec.extend(id, bad), Error);
  EXPECT_THROW(dec.extend(id, empty), Error);
  EXPECT_THROW(dec.extend(id + 1, std::vector<int32_t>{1}), Error);
  EXPECT_THROW(dec.extend(id, long_chunk), Error);  // 13 tokens > 12
  EXPECT_EQ(dec.length(id), 5);
  EXPECT_EQ(dec.cache().blocks_of(id), 2);
  EXPECT_EQ(dec.cache().free_blocks(), 1);
  // Still exact afterwards.
  KVCache dense(m.config, 16);
  forward(m, prompt, dense, Logits::Last);
  std::vector<float> got;
  const std::vector<int32_t> more = {4, 5, 6, 7, 8, 9, 10};
  dec.extend(id, more, &got);
  EXPECT_LT(rel_err(logits_tensor(got), forward(m, more, dense, Logits::Last)), 1e-4);
  EXPECT_EQ(dec.length(id), 12);
  EXPECT_EQ(dec.cache().free_blocks(), 0);

  Model g = random_model(tiny_gpt2(), 37, 0.1);  // 128 learned positions
  BatchDecoder gdec(g, {f32_spec(), 1});
  const int gid = gdec.add(tokens(rng, 120, 61));
  EXPECT_THROW(gdec.extend(gid, std::vector<int32_t>(9, 1)), Error);
  EXPECT_EQ(gdec.length(gid), 120);
  gdec.extend(gid, std::vector<int32_t>(8, 1));
  EXPECT_EQ(gdec.length(gid), 128);
}

TEST(BatchDecoder, ExhaustedPoolIsAnErrorAndOthersContinue) {
  Model m = random_model(tiny_llama(), 7, 0.1);
  CacheSpec probe = f32_spec(4);
  const std::size_t block = PagedKVCache(cache_shape(m.config), probe).block_bytes();
  CacheSpec spec = probe;
  spec.budget_bytes = block * 5;  // 20 tokens in total
  BatchDecoder dec(m, {spec, 1});
  std::mt19937 rng(9);
  auto pa = tokens(rng, 8, 61), pb = tokens(rng, 8, 61);
  KVCache da(m.config, 64);
  forward(m, pa, da, Logits::Last);
  int a = dec.add(pa), b = dec.add(pb);  // 4 blocks
  // a can grow into the last block; b then cannot.
  std::vector<int32_t> t1 = {3};
  for (int s = 0; s < 4; ++s) {
    at::Tensor got = logits_tensor(dec.step(std::vector<int>{a}, t1));
    at::Tensor want = forward(m, t1, da, Logits::Last);
    EXPECT_LT(rel_err(got, want), 1e-4);
  }
  try {
    dec.step(std::vector<int>{a, b}, std::vector<int32_t>{3, 3});
    FAIL() << "expected the pool to run out";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("exhausted"), std::string::npos) << e.what();
  }
  EXPECT_EQ(dec.length(a), 12);
  EXPECT_EQ(dec.length(b), 8);
  EXPECT_THROW(dec.add(tokens(rng, 5, 61)), Error);
  EXPECT_EQ(dec.cache().sequences(), 2);
  // Ending b makes room; a continues and still matches the dense path.
  dec.remove(b);
  for (int s = 0; s < 3; ++s) {
    at::Tensor got = logits_tensor(dec.step(std::vector<int>{a}, t1));
    at::Tensor want = forward(m, t1, da, Logits::Last);
    EXPECT_LT(rel_err(got, want), 1e-4);
  }
  EXPECT_THROW(dec.step(std::vector<int>{a, a}, std::vector<int32_t>{1, 1}), Error);
  EXPECT_THROW(dec.step(std::vector<int>{a}, std::vector<int32_t>{61}), Error);
}

// add_synthetic (benchmarks only): the synthetic rows are what the cache
// holds, so copying them into a dense cache must give the dense path's logits
// step for step, alone and batched with a prompted sequence, and after
// truncate. Also: determinism by seed, accounting, roughly unit variance,
// and rows repeating after kSyntheticPeriod tokens.
TEST(BatchDecoder, SyntheticPrefixDecodesLikeDenseWithTheSameRows) {
  ModelConfig c = tiny_llama();
  c.key_rank = {4, 8};
  Model m = random_model(c, 11, 0.1);
  BatchDecoder dec(m, {f32_spec(4), 2});
  const int n = BatchDecoder::kSyntheticPeriod + 7;
  const int s = dec.add_synthetic(n, 3);
  EXPECT_EQ(dec.length(s), n);
  EXPECT_EQ(dec.cache().blocks_of(s), (n + 3) / 4);
  const int same = dec.add_synthetic(n, 3), other = dec.add_synthetic(n, 4);
  for (int t : {BatchDecoder::kSyntheticPeriod, n - 1}) {
    const PagedRows v = dec.cache().values(s, 1, 1);
    EXPECT_EQ(std::memcmp(v.row(t), v.row(t - BatchDecoder::kSyntheticPeriod), 16 * 4), 0);
    EXPECT_NE(std::memcmp(v.row(t), v.row(t - 1), 16 * 4), 0);
  }

  KVCache dense(c, n + 16);
  double sum = 0, sq = 0, count = 0;
  bool all_same = true, any_other_same = false;
  auto copy = [&](PagedRows rows, PagedRows same_rows, PagedRows other_rows, at::Tensor dst) {
    const int w = static_cast<int>(dst.size(1));
    std::vector<float> p(w), same_p(w), other_p(w);
    for (int t = 0; t < n; ++t) {
      read_row(rows, t, p.data());
      read_row(same_rows, t, same_p.data());
      read_row(other_rows, t, other_p.data());
      all_same &= p == same_p;
      any_other_same |= p == other_p;
      for (int j = 0; j < w; ++j) {
        dst[t][j] = p[j];
        sum += p[j];
        sq += double{p[j]} * p[j];
        ++count;
      }
    }
  };
  const PagedKVCache& pc = dec.cache();
  for (int l = 0; l < c.n_layers; ++l) {
    for (int h = 0; h < c.key_heads(); ++h)
      copy(pc.keys(s, l, h), pc.keys(same, l, h), pc.keys(other, l, h), dense.keys(l)[h]);
    for (int h = 0; h < c.n_kv_heads; ++h)
      copy(pc.values(s, l, h), pc.values(same, l, h), pc.values(other, l, h), dense.values(l)[h]);
  }
  dense.advance(n);
  EXPECT_TRUE(all_same);
  EXPECT_FALSE(any_other_same);
  EXPECT_LT(std::abs(sum / count), 0.1);
  EXPECT_NEAR(sq / count, 1.0, 0.15);
  dec.remove(same);
  dec.remove(other);

  std::mt19937 rng(12);
  auto prompt = tokens(rng, 6, c.vocab_size);
  KVCache dp(c, 64);
  forward(m, prompt, dp, Logits::Last);
  const int p = dec.add(prompt);
  for (int step = 0; step < 6; ++step) {
    if (step == 3) {  // back to 7 tokens in both caches
      dec.truncate(s, 7);
      dense.truncate(7);
      EXPECT_EQ(dec.length(s), 7);
    }
    const std::vector<int32_t> next = tokens(rng, 2, c.vocab_size);
    const std::vector<int> ids = step % 2 ? std::vector<int>{s, p} : std::vector<int>{s};
    at::Tensor got =
        logits_tensor(dec.step(ids, std::span<const int32_t>(next.data(), ids.size())));
    at::Tensor want = forward(m, std::span<const int32_t>(&next[0], 1), dense, Logits::Last);
    EXPECT_LT(rel_err(got[0].unsqueeze(0), want), 1e-4) << "step " << step;
    if (ids.size() == 2) {
      at::Tensor want_p = forward(m, std::span<const int32_t>(&next[1], 1), dp, Logits::Last);
      EXPECT_LT(rel_err(got[1].unsqueeze(0), want_p), 1e-4) << "step " << step;
    }
    EXPECT_EQ(dec.length(s), dense.length());
  }
  EXPECT_THROW(dec.truncate(s, dec.length(s) + 1), Error);
  EXPECT_THROW(dec.add_synthetic(0, 1), Error);
  const int live = dec.cache().sequences(), free_blocks = dec.cache().free_blocks();
  EXPECT_THROW(dec.add_synthetic(1 << 20, 1), Error);  // far beyond the 8 MiB pool
  EXPECT_EQ(dec.cache().sequences(), live);
  EXPECT_EQ(dec.cache().free_blocks(), free_blocks);

  // Quantized keys go through the same encoder; the step just has to run.
  CacheSpec q{CacheDType::Int4, CacheDType::F16, 8, 4, std::size_t{8} << 20};
  BatchDecoder qdec(m, {q, 2});
  const int qs = qdec.add_synthetic(n, 3);
  at::Tensor logits = logits_tensor(qdec.step(std::vector<int>{qs}, std::vector<int32_t>{5}));
  EXPECT_TRUE(logits.isfinite().all().item<bool>());
  EXPECT_EQ(qdec.length(qs), n + 1);
}

TEST(BatchGenerate, GreedyMatchesOnePromptAtATime) {
  // Five prompts through a batch of at most two: sequences leave when they
  // reach their limit and waiting prompts join, yet each greedy continuation
  // equals the dense single-sequence generator's.
  Model m = random_model(tiny_llama(), 8, 0.3);
  std::mt19937 rng(10);
  std::vector<std::vector<int32_t>> prompts;
  for (int n : {3, 9, 1, 5, 12}) prompts.push_back(tokens(rng, n, 61));
  BatchGenerateOptions o;
  o.generate.max_new_tokens = 12;
  o.generate.stop_at_end_of_text = false;
  o.cache = f32_spec(4);
  o.max_batch = 2;
  o.threads = 2;
  BatchGenerateStats st;
  auto outs = generate_batch(m, prompts, o, &st);
  ASSERT_EQ(outs.size(), prompts.size());
  for (size_t i = 0; i < prompts.size(); ++i)
    EXPECT_EQ(outs[i], generate(m, prompts[i], o.generate)) << "prompt " << i;
  EXPECT_EQ(st.generated_tokens, 5 * 12);
  EXPECT_GT(st.peak_cache_bytes, 0u);
  EXPECT_LE(st.peak_cache_bytes, st.cache_capacity_bytes);
}

// Perplexity through the paged cache: f32 storage reproduces the dense
// evaluation; int4 keys (one scale per 32 values) change it, but only a little
// and measurably (KL to the dense model > 0), so the dtype really is applied.
TEST(PagedPerplexity, F32EqualsDenseAndInt4IsCloseButNotEqual) {
  Model m = random_model(tiny_llama(), 4, 0.1);
  std::mt19937 rng(8);
  auto toks = tokens(rng, 150, m.config.vocab_size);
  PerplexityOptions po{64, 32, false};
  PerplexityResult dense = evaluate_perplexity(m, toks, po);
  PerplexityResult f32 =
      evaluate_perplexity(m, toks, po, {}, &m, paged_window_logits(m, {f32_spec(16), 2}));
  EXPECT_EQ(f32.tokens_scored, dense.tokens_scored);
  EXPECT_NEAR(f32.mean_nll, dense.mean_nll, 1e-5 * dense.mean_nll);
  EXPECT_LT(f32.kl_mean, 1e-9);
  EXPECT_EQ(f32.top1_agreement, 1.0);

  CacheSpec int4 = f32_spec(16);
  int4.key_dtype = CacheDType::Int4;
  PerplexityResult q = evaluate_perplexity(m, toks, po, {}, &m, paged_window_logits(m, {int4, 2}));
  EXPECT_GT(q.kl_mean, 1e-9);
  EXPECT_LT(q.kl_mean, 0.05);
  EXPECT_NE(q.mean_nll, dense.mean_nll);
}

// Decode streams every weight once per step, so finalize() copies each
// streamed matrix into the weight arena (util/huge_page_arena.h), whose
// mappings are whole, advised huge pages, small matrices included; the
// values, the views into the fused tensors and the tied head must all
// survive the move, and so must a second finalize() and int8 packing.
TEST(ModelWeights, StreamedWeightsMoveOntoWholeHugePagesUnchanged) {
  ModelConfig c = tiny_llama();
  c.dim = 512;
  c.n_layers = 1;
  c.n_heads = 8;
  c.n_kv_heads = 8;  // wqkv 1536 x 512 f32: 3 MiB
  c.head_dim = 64;
  c.hidden_dim = 1024;  // w_gate_up 4 MiB, w_down exactly 2 MiB
  c.vocab_size = 1100;  // tok_emb 2.1 MiB
  c.tied_embeddings = true;
  Model m = random_model(c, 12, 0.1);
  std::ifstream thp("/sys/kernel/mm/transparent_hugepage/enabled");
  std::string thp_mode;
  std::getline(thp, thp_mode);
  const bool advisable = thp && thp_mode.find("[never]") == std::string::npos;
  auto on_huge = [&](const at::Tensor& t) {
    const auto whole = on_whole_huge_pages(t.data_ptr(), t.nbytes());
    return !advisable || !whole || *whole;
  };
  for (int round = 0; round < 2; ++round) {
    const LayerWeights& L = m.weights.layers[0];
    EXPECT_TRUE(on_huge(L.wqkv));
    EXPECT_TRUE(on_huge(L.w_gate_up));
    EXPECT_TRUE(on_huge(L.w_down));
    EXPECT_TRUE(on_huge(m.weights.tok_emb));
    EXPECT_TRUE(on_huge(L.wo));  // 1 MiB
    EXPECT_EQ(L.wq.data_ptr(), L.wqkv.data_ptr());
    EXPECT_EQ(L.w_gate.data_ptr(), L.w_gate_up.data_ptr());
    EXPECT_EQ(m.weights.lm_head.data_ptr(), m.weights.tok_emb.data_ptr());
    // The canonical tensors as they are now, then moved again.
    std::vector<at::Tensor> before;
    for (const at::Tensor& t :
         {L.wq, L.wk, L.wv, L.wo, L.w_gate, L.w_up, L.w_down, m.weights.tok_emb})
      before.push_back(t.clone());
    m.finalize();
    const LayerWeights& A = m.weights.layers[0];
    const std::vector<at::Tensor> after = {A.wq,     A.wk,   A.wv,     A.wo,
                                           A.w_gate, A.w_up, A.w_down, m.weights.tok_emb};
    for (std::size_t i = 0; i < after.size(); ++i) EXPECT_TRUE(at::equal(after[i], before[i])) << i;
  }
  convert_weights(m, WeightFormat::Int8);
  const LayerWeights& L = m.weights.layers[0];
  const Weights& w = m.weights;
  for (const at::Tensor* t : {&L.wqkv, &L.wqkv_scales, &L.wo, &L.wo_scales, &L.w_down,
                              &L.w_down_scales, &w.tok_emb, &w.tok_emb_scales})
    EXPECT_TRUE(on_huge(*t));
}

// use_model (benchmarks time weight formats over one cache): the step after a
// swap uses the new weights (it differs from the old model's step, by about
// bf16's rounding) and does not depend on steps run before the swap; other
// shapes are refused.
TEST(BatchDecoder, UseModelStepsWithTheNewWeights) {
  Model a = random_model(tiny_llama(), 21, 0.1);
  Model b = random_model(tiny_llama(), 21, 0.1);
  convert_weights(b, parse_weight_format("bf16"));
  BatchDecoderOptions o;
  o.cache.key_dtype = o.cache.value_dtype = CacheDType::F32;
  const std::vector<int32_t> prompt = {3, 7, 1, 9, 4};
  BatchDecoder d1(a, o), d2(a, o);
  const int i1 = d1.add(prompt), i2 = d2.add(prompt);
  const int32_t tok[1] = {5};
  const int id1[1] = {i1}, id2[1] = {i2};
  const at::Tensor own =
      logits_tensor(d1.step(id1, tok));  // a's step, then b's over the same cache
  d1.truncate(i1, static_cast<int>(prompt.size()));
  d1.use_model(b);
  d2.use_model(b);
  const at::Tensor got = logits_tensor(d1.step(id1, tok)), want = logits_tensor(d2.step(id2, tok));
  EXPECT_TRUE(at::equal(got, want));
  EXPECT_FALSE(at::equal(got, own));
  EXPECT_LT((got - own).abs().max().item<float>(), 0.05f * own.abs().max().item<float>());
  ModelConfig other = tiny_llama();
  other.hidden_dim += 8;
  Model c = random_model(other, 22, 0.1);
  EXPECT_THROW(d1.use_model(c), Error);
}

// The cache learns from the model how many query heads read each key head,
// which decides its key layout (PagedKVCache::keys_by_channel): the GPT-2
// model's full keys, one query each, token by token; the GQA model's by
// channel.
TEST(BatchDecoder, CacheShapeCarriesQueriesPerKeyHead) {
  const ModelConfig gpt2 = tiny_gpt2(), llama = tiny_llama();
  EXPECT_EQ(cache_shape(gpt2)[0].queries_per_key, 1);
  EXPECT_EQ(cache_shape(llama)[0].queries_per_key, 4);
  const CacheSpec spec;
  EXPECT_FALSE(PagedKVCache(cache_shape(gpt2), spec).keys_by_channel(0));
  EXPECT_TRUE(PagedKVCache(cache_shape(llama), spec).keys_by_channel(0));
}

}  // namespace
}  // namespace thinkeys
