// Training: the training forward equals the runtime forward; a few steps
// reduce the loss; resume is bit-identical; QK fine-tuning freezes everything
// else bit for bit; bad architectures fail with one clear error.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <numeric>
#include <random>
#include <set>
#include <thread>

#include "checkpoint/hf_checkpoint.h"
#include "compress/compressor.h"
#include "io/hf_config.h"
#include "model/kv_cache.h"
#include "model/random_init.h"
#include "model/transformer.h"
#include "test_support.h"
#include "train/data_parallel.h"
#include "train/model_builder.h"
#include "train/rank_launcher.h"
#include "train/token_cache.h"
#include "train/trainable.h"
#include "train/trainer.h"
#include "train/training_forward.h"
#include "train/window_dataset.h"
#include "util/error.h"

namespace thinkeys {
namespace {

ArchConfig tiny_arch(const std::string& arch) {
  ArchConfig a;
  a.arch = arch;
  a.vocab_size = 61;
  a.dim = 32;
  a.n_layers = 2;
  a.n_heads = 4;
  a.ctx = 32;
  a.hidden_dim = 48;
  return a;
}

using test::random_tokens;

// A learnable stream: a repeated random phrase with occasional noise.
std::vector<int32_t> patterned_tokens(int n, int vocab, uint32_t seed) {
  auto phrase = random_tokens(13, vocab, seed);
  std::mt19937 rng(seed + 1);
  std::vector<int32_t> t(static_cast<size_t>(n));
  for (int i = 0; i < n; ++i)
    t[static_cast<size_t>(i)] =
        rng() % 10 == 0 ? static_cast<int32_t>(rng() % vocab) : phrase[i % 13];
  return t;
}

// Max |a - b| / max |b| between the training forward on a batch and the
// runtime forward on each row separately.
double forward_mismatch(const Model& m, int batch, int T, uint32_t seed) {
  auto toks = random_tokens(batch * T, m.config.vocab_size, seed);
  at::Tensor ids = at::tensor(toks, at::kInt).view({batch, T}).to(at::kLong);
  at::Tensor got;
  {
    at::NoGradGuard g;
    got = training_forward(m, ids);
  }
  double worst = 0;
  for (int b = 0; b < batch; ++b) {
    KVCache cache(m.config, T);
    at::Tensor want = forward(m, std::span<const int32_t>(toks.data() + b * T, T), cache);
    double err = (got[b] - want).abs().max().item<double>() / want.abs().max().item<double>();
    worst = std::max(worst, err);
  }
  return worst;
}

TEST(TrainingForward, MatchesRuntimeGpt2) {
  Model m = random_model(make_model_config(tiny_arch("gpt2")), 1, 0.1);
  EXPECT_LE(forward_mismatch(m, 3, 17, 2), 1e-4);
}

TEST(TrainingForward, MatchesRuntimeGpt2ThinKeys) {
  ArchConfig a = tiny_arch("gpt2");
  a.d_select = 12;  // 3 dims per head
  Model m = random_model(make_model_config(a), 3, 0.1);
  ASSERT_EQ(m.config.key_width(0), 3);
  EXPECT_LE(forward_mismatch(m, 2, 20, 4), 1e-4);
}

TEST(TrainingForward, MatchesRuntimeLlamaGqaThinKeys) {
  ArchConfig a = tiny_arch("llama");
  a.n_kv_heads = 2;
  a.d_select = 16;  // 4 of 8 dims per head, RoPE on those 4
  Model m = random_model(make_model_config(a), 5, 0.1);
  EXPECT_LE(forward_mismatch(m, 3, 19, 6), 1e-4);
}

TEST(TrainingForward, MatchesRuntimeLlamaThinKeysWithEitherRopeTable) {
  ArchConfig a = tiny_arch("llama");
  a.d_select = 16;
  for (const char* table : {"head_dim", "key_width"}) {
    a.thin_rope_table = table;
    Model m = random_model(make_model_config(a), 5, 0.1);
    EXPECT_EQ(to_string(m.config.rope_table), std::string(table));
    EXPECT_LE(forward_mismatch(m, 2, 19, 6), 1e-4) << table;
  }
}

// A tiny Llama with thin keys of width 4 per head (head_dim 16).
ArchConfig thin_rope_arch(const char* table) {
  ArchConfig a = tiny_arch("llama");
  a.dim = 64;
  a.d_select = 16;
  a.thin_rope_table = table;
  return a;
}

TEST(ThinKeyRope, KeyWidthTableIsHandDerivedAndEqualsEveryFourthPlane) {
  Model own = random_model(make_model_config(thin_rope_arch("key_width")), 21, 0.3);
  ASSERT_EQ(own.config.key_width(0), 4);
  // theta^(-2i/r) for r = 4, theta = 10^4: 1 and 10^-2.
  at::Tensor f = own.weights.layers[1].rope_inv_freq;
  ASSERT_EQ(f.numel(), 2);
  EXPECT_FLOAT_EQ(f[0].item<float>(), 1.0f);
  EXPECT_FLOAT_EQ(f[1].item<float>(), 0.01f);

  // The same weights as a 'pairs' model keeping planes {0, 4} of the head_dim
  // table, whose frequencies are 10^(-4*0/16) and 10^(-4*8/16): the same.
  Model pairs;
  pairs.config = own.config;
  pairs.config.rope_table = RopeTable::HeadDim;
  pairs.config.thin_keys = ThinKeysInfo{"svd", "keys", RopeMode::Pairs, 1};
  pairs.config.rope_planes.assign(pairs.config.n_layers,
                                  std::vector<std::vector<int>>(pairs.config.n_kv_heads, {0, 4}));
  pairs.weights = own.weights;
  for (auto& L : pairs.weights.layers) L.rope_inv_freq = at::Tensor();
  pairs.finalize();
  auto toks = random_tokens(40, own.config.vocab_size, 22);
  KVCache c1(own.config, 40), c2(pairs.config, 40);
  at::Tensor a = forward(own, toks, c1), b = forward(pairs, toks, c2);
  EXPECT_LE((a - b).abs().max().item<double>() / b.abs().max().item<double>(), 1e-5);

  // The old table (planes 0 and 1) gives other logits: the choice matters.
  Model old = own;
  old.config.rope_table = RopeTable::HeadDim;
  for (auto& L : old.weights.layers) L.rope_inv_freq = at::Tensor();
  old.finalize();
  KVCache c3(old.config, 40);
  EXPECT_GT((forward(old, toks, c3) - b).abs().max().item<double>() / b.abs().max().item<double>(),
            1e-3);
}

TEST(ThinKeyRope, TableRoundTripsAndOldConfigsMeanHeadDim) {
  Model m = random_model(make_model_config(thin_rope_arch("key_width")), 23, 0.1);
  test::TempDir dir;
  write_hf_checkpoint(m, dir.path(), DType::F32);
  Model back = load_hf_checkpoint(dir.path());
  EXPECT_EQ(back.config.rope_table, RopeTable::KeyWidth);
  auto toks = random_tokens(12, m.config.vocab_size, 24);
  KVCache c1(m.config, 12), c2(back.config, 12);
  EXPECT_TRUE(at::equal(forward(m, toks, c1), forward(back, toks, c2)));

  // A config written before the field existed: no "rope_table" key.
  nlohmann::json j = nlohmann::json::parse(hf_config_json(m.config));
  ASSERT_EQ(j["thin_keys"]["rope_table"], "key_width");
  j["thin_keys"].erase("rope_table");
  EXPECT_EQ(parse_hf_config(j.dump(), "legacy").rope_table, RopeTable::HeadDim);
  j["thin_keys"]["rope_table"] = "planes";
  EXPECT_THROW(parse_hf_config(j.dump(), "bad"), Error);
}

TEST(TrainingForward, MatchesRuntimeLlamaMqaUntied) {
  ArchConfig a = tiny_arch("llama");
  a.n_kv_heads = 1;
  a.tied_embeddings = false;
  Model m = random_model(make_model_config(a), 7, 0.1);
  EXPECT_LE(forward_mismatch(m, 2, 16, 8), 1e-4);
}

TEST(TrainingForward, MatchesRuntimeOnCompressedRopeModes) {
  ArchConfig a = tiny_arch("llama");
  a.n_kv_heads = 2;
  Model base = random_model(make_model_config(a), 9, 0.1);
  for (RopeMode mode : {RopeMode::Post, RopeMode::Latent, RopeMode::Pairs}) {
    CompressOptions o;
    o.method = CompressMethod::Svd;
    o.rope = mode;
    o.ranks.key_rank = 4;
    Model c = compress_model(base, o, {});
    EXPECT_LE(forward_mismatch(c, 2, 15, 10), 1e-4) << to_string(mode);
  }
}

// The gradients training uses against central finite differences of the loss,
// in double precision: a change to how the training forward is computed (fused
// score scaling, grouped heads, masks) that altered the gradients fails here.
double worst_gradient_error(const ArchConfig& a, uint32_t seed) {
  Model m = init_model(make_model_config(a), seed);
  auto params = prepare_for_training(m, TrainScope::All);
  {
    at::NoGradGuard g;
    for (auto& p : params) p.tensor.set_data(p.tensor.detach().to(at::kDouble));
  }
  const int B = 2, T = 11;
  auto toks = random_tokens(B * (T + 1), a.vocab_size, seed + 1);
  at::Tensor all = at::tensor(toks, at::kInt).view({B, T + 1}).to(at::kLong);
  at::Tensor ids = all.narrow(1, 0, T), targets = all.narrow(1, 1, T);
  auto loss = [&] { return lm_loss(training_forward(m, ids), targets); };
  loss().backward();
  at::NoGradGuard g;
  std::mt19937 rng(seed);
  double worst = 0;
  for (auto& p : params) {
    at::Tensor flat = p.tensor.view({-1}), grad = p.tensor.grad().reshape({-1});
    for (int i = 0; i < 3; ++i) {
      const int64_t j = static_cast<int64_t>(rng() % static_cast<uint32_t>(flat.numel()));
      const double x = flat[j].item<double>(), h = 1e-6;
      flat[j].fill_(x + h);
      const double up = loss().item<double>();
      flat[j].fill_(x - h);
      const double down = loss().item<double>();
      flat[j].fill_(x);
      const double fd = (up - down) / (2 * h), got = grad[j].item<double>();
      worst = std::max(worst, std::abs(got - fd) / std::max(1e-3, std::abs(fd)));
    }
  }
  return worst;
}

TEST(TrainingForward, GradientsMatchFiniteDifferences) {
  ArchConfig mha = tiny_arch("gpt2");
  ArchConfig gqa = tiny_arch("llama");
  gqa.n_kv_heads = 2;
  ArchConfig thin_gqa = gqa;
  thin_gqa.d_select = 8;
  thin_gqa.query_pre_attn_scalar = 2;
  ArchConfig mqa = tiny_arch("llama");
  mqa.n_kv_heads = 1;
  mqa.tied_embeddings = false;
  EXPECT_LE(worst_gradient_error(mha, 21), 1e-5);
  EXPECT_LE(worst_gradient_error(gqa, 22), 1e-5);
  EXPECT_LE(worst_gradient_error(thin_gqa, 23), 1e-5);
  EXPECT_LE(worst_gradient_error(mqa, 24), 1e-5);
}

TEST(TrainingForward, WorksOnPreparedModelAndExportsBack) {
  ArchConfig a = tiny_arch("llama");
  a.n_kv_heads = 2;
  Model m = random_model(make_model_config(a), 11, 0.1);
  Model ref = inference_model(m);
  prepare_for_training(m, TrainScope::All);
  EXPECT_EQ(m.weights.layers[0].wqkv.defined(), false);
  Model back = inference_model(m);
  EXPECT_LE(forward_mismatch(back, 1, 12, 12), 1e-4);
  auto toks = random_tokens(12, a.vocab_size, 12);
  KVCache c1(ref.config, 12), c2(back.config, 12);
  EXPECT_TRUE(at::equal(forward(ref, toks, c1), forward(back, toks, c2)));
}

TEST(ModelBuilder, BadArchitecturesFailClearly) {
  auto message = [](ArchConfig a) {
    try {
      make_model_config(a);
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  ArchConfig a = tiny_arch("llama");
  a.n_heads = 5;
  EXPECT_NE(message(a).find("must divide the width"), std::string::npos) << message(a);
  a = tiny_arch("llama");
  a.n_kv_heads = 3;
  EXPECT_NE(message(a).find("KV heads (3) must divide"), std::string::npos) << message(a);
  a = tiny_arch("llama");
  a.d_select = 64;  // 16 per head > head_dim 8
  EXPECT_NE(message(a).find("exceeds the head dimension"), std::string::npos) << message(a);
  a = tiny_arch("llama");
  a.d_select = 6;
  EXPECT_NE(message(a).find("multiple of the number of heads"), std::string::npos) << message(a);
  a = tiny_arch("gpt2");
  a.n_kv_heads = 2;
  EXPECT_NE(message(a).find("no grouped-query"), std::string::npos) << message(a);
  a = tiny_arch("bert");
  EXPECT_NE(message(a).find("unknown --arch"), std::string::npos) << message(a);
}

TrainConfig tiny_train_config() {
  TrainConfig t;
  t.steps = 30;
  t.batch_size = 4;
  t.lr = 3e-3;
  t.warmup_steps = 3;
  t.weight_decay = 0.01;
  t.show_progress = false;
  t.log_every = 0;
  return t;
}

TEST(Trainer, FewStepsReduceTheLoss) {
  ArchConfig a = tiny_arch("llama");
  a.n_kv_heads = 2;
  a.d_select = 8;
  Model m = init_model(make_model_config(a), 1);
  WindowDataset data(patterned_tokens(4000, a.vocab_size, 3), 24, 42);
  TrainConfig t = tiny_train_config();
  Trainer trainer(m, t, data.source());
  trainer.set_validation({data.windows_in_order(0, 4)});
  double before = trainer.validate();
  EXPECT_NEAR(before, std::log(61.0), 0.3);  // near-uniform at initialisation
  auto sum = trainer.run();
  EXPECT_LT(sum.final_val_loss, before - 1.0);
  EXPECT_EQ(trainer.steps_done(), 30);
}

TEST(Trainer, LearningRateSchedule) {
  TrainConfig t;
  t.steps = 101;
  t.lr = 1.0;
  t.warmup_steps = 10;
  t.min_lr_ratio = 0.1;
  EXPECT_DOUBLE_EQ(learning_rate(t, 0), 0.1);
  EXPECT_DOUBLE_EQ(learning_rate(t, 9), 1.0);
  EXPECT_DOUBLE_EQ(learning_rate(t, 10), 1.0);
  EXPECT_NEAR(learning_rate(t, 55), 0.55, 1e-12);  // halfway down the cosine
  EXPECT_NEAR(learning_rate(t, 100), 0.1, 1e-12);
}

std::map<std::string, at::Tensor> snapshot(const std::vector<NamedParameter>& ps) {
  std::map<std::string, at::Tensor> out;
  for (const auto& p : ps) out[p.name] = p.tensor.detach().clone();
  return out;
}

TEST(Trainer, ResumeIsBitIdentical) {
  test::TempDir tmp;
  ArchConfig a = tiny_arch("gpt2");
  a.d_select = 8;
  ModelConfig mc = make_model_config(a);
  WindowDataset data(patterned_tokens(3000, a.vocab_size, 5), 16, 7);
  TrainConfig t = tiny_train_config();
  t.steps = 8;
  t.grad_accum = 2;

  Model straight = init_model(mc, 2);
  Trainer t1(straight, t, data.source());
  for (int i = 0; i < 8; ++i) t1.step();

  Model first = init_model(mc, 2);
  {
    Trainer t2(first, t, data.source());
    for (int i = 0; i < 3; ++i) t2.step();
    t2.save_checkpoint(tmp / "ckpt");
  }
  Model resumed = init_model(mc, 99);  // different weights: all must come from the checkpoint
  Trainer t3(resumed, t, data.source());
  t3.load_checkpoint(tmp / "ckpt");
  EXPECT_EQ(t3.steps_done(), 3);
  for (int i = 0; i < 5; ++i) t3.step();

  auto want = snapshot(t1.parameters()), got = snapshot(t3.parameters());
  ASSERT_EQ(want.size(), got.size());
  for (const auto& [name, w] : want) EXPECT_TRUE(at::equal(w, got.at(name))) << name;

  // The checkpoint is an ordinary model directory.
  Model loaded = load_hf_checkpoint(tmp / "ckpt");
  EXPECT_EQ(loaded.config.key_width(0), 2);
}

TEST(Trainer, QkScopeLeavesEverythingElseBitIdentical) {
  ArchConfig a = tiny_arch("llama");
  a.n_kv_heads = 2;
  Model base = random_model(make_model_config(a), 13, 0.1);
  CompressOptions o;
  o.method = CompressMethod::Svd;
  o.rope = RopeMode::Post;
  o.ranks.key_rank = 4;
  Model m = compress_model(base, o, {});
  Model before = inference_model(m);
  WindowDataset data(patterned_tokens(2000, a.vocab_size, 9), 16, 1);
  TrainConfig t = tiny_train_config();
  t.steps = 4;
  t.scope = TrainScope::QK;
  t.loss = LossKind::KD;
  Trainer trainer(m, t, data.source());
  trainer.set_teacher(&base);
  trainer.run();

  Model before_copy = before;
  auto old_params = snapshot(prepare_for_training(before_copy, TrainScope::All));
  std::set<std::string> changed;
  int frozen = 0;
  for (const auto& p : trainer.parameters()) {
    const at::Tensor& old = old_params.at(p.name);
    if (p.trainable) {
      if (!at::equal(old, p.tensor)) changed.insert(p.name);
    } else {
      ++frozen;
      EXPECT_TRUE(at::equal(old, p.tensor)) << p.name;
    }
  }
  // Post mode: scores are (B^T rot(W_Q x)) . (A^T rot(W_K x)), so all four maps
  // of both layers carry gradient and must move; nothing else may.
  std::set<std::string> want;
  for (int l = 0; l < a.n_layers; ++l)
    for (const char* w : {"wq", "wk", "k_down", "q_down"})
      want.insert("layers." + std::to_string(l) + "." + w);
  EXPECT_EQ(changed, want);
  EXPECT_GT(frozen, 10);
}

// KL(teacher || student) per scored position, averaged over scored positions,
// against values worked out by hand.
TEST(Trainer, KdLossIsTheMeanKlOfTeacherToStudentOverScoredPositions) {
  const double ln3 = std::log(3.0);
  // Position 0: teacher (1/2, 1/2), student (1/4, 3/4):
  //   KL = 1/2 ln(2) + 1/2 ln(2/3) = 1/2 ln(4/3) = 0.1438 (the reverse,
  //   KL(student || teacher) = 1/4 ln(1/2) + 3/4 ln(3/2) = 0.1308, would fail).
  // Position 1: teacher uniform, student uniform written as (7, 7): KL = 0.
  // Position 2: not scored (target ignored), teacher and student far apart.
  at::Tensor student = at::tensor({0.0, ln3, 7.0, 7.0, 0.0, 10.0}, at::kFloat).view({1, 3, 2});
  at::Tensor teacher = at::tensor({0.0, 0.0, -2.0, -2.0, 10.0, 0.0}, at::kFloat).view({1, 3, 2});
  at::Tensor targets = at::tensor(std::vector<int64_t>{1, 0, kIgnoreIndex}, at::kLong).view({1, 3});
  const double want = 0.5 * std::log(4.0 / 3.0) / 2.0;  // 0.0719205...
  EXPECT_NEAR(kd_loss(student, teacher, targets).item<double>(), want, 1e-6);
  // Only positions whose target is not ignored count, whatever their KL.
  at::Tensor one =
      at::tensor(std::vector<int64_t>{1, kIgnoreIndex, kIgnoreIndex}, at::kLong).view({1, 3});
  EXPECT_NEAR(kd_loss(student, teacher, one).item<double>(), 0.5 * std::log(4.0 / 3.0), 1e-6);
}

// Two Gloo ranks (threads of this process, each its own process group over a
// loopback TCP store) with batch B end where one process with batch 2B ends.
TEST(DataParallel, TwoRanksMatchOneProcessOnTheConcatenatedBatch) {
  if (!data_parallel_available()) GTEST_SKIP() << "built without Gloo";
  ArchConfig a = tiny_arch("llama");
  a.n_kv_heads = 2;
  a.d_select = 8;
  ModelConfig mc = make_model_config(a);
  WindowDataset data(patterned_tokens(3000, a.vocab_size, 21), 16, 3);
  TrainConfig t = tiny_train_config();
  t.steps = 3;
  t.grad_accum = 2;

  TrainConfig single = t;
  single.batch_size = 2 * t.batch_size;
  Model one = init_model(mc, 4);
  Trainer t1(one, single, data.source());
  for (int i = 0; i < 3; ++i) t1.step();

  const int port = free_loopback_port();
  std::vector<std::map<std::string, at::Tensor>> results(2);
  std::vector<std::string> errors(2);
  auto rank_main = [&](int rank) {
    try {
      // Different initial weights on rank 1: the trainer must broadcast rank 0's.
      Model m = init_model(mc, rank == 0 ? 4 : 5);
      DataParallel dp({rank, 2, "127.0.0.1", port, 60});
      Trainer tr(m, t, data.source());
      tr.set_data_parallel(&dp);
      for (int i = 0; i < 3; ++i) tr.step();
      results[rank] = snapshot(tr.parameters());
    } catch (const std::exception& e) {
      errors[rank] = e.what();
    }
  };
  std::thread r0(rank_main, 0), r1(rank_main, 1);
  r0.join();
  r1.join();
  ASSERT_EQ(errors[0], "");
  ASSERT_EQ(errors[1], "");
  auto want = snapshot(t1.parameters());
  for (const auto& [name, w] : want) {
    EXPECT_TRUE(at::equal(results[0].at(name), results[1].at(name))) << name;  // lockstep
    double diff = (results[0].at(name) - w).abs().max().item<double>();
    EXPECT_LE(diff, 1e-5) << name;  // same math, summed in another order
  }
  // And the run really moved the weights (the comparison is not vacuous).
  Model init = init_model(mc, 4);
  auto init_params = snapshot(prepare_for_training(init, TrainScope::All));
  EXPECT_GT((init_params.at("layers.0.wq") - want.at("layers.0.wq")).abs().max().item<double>(),
            1e-3);
}

// The Gutenberg directory holds train shards, valid.txt and the held-out
// test.txt side by side; test text must reach neither training nor validation.
TEST(TrainingData, DirectoryLeavesTestTextOut) {
  test::TempDir dir;
  for (const char* name : {"train-00.txt", "train-01.txt", "valid.txt", "test.txt", "wiki.test.txt",
                           "books_test.txt", "notes.md"})
    std::ofstream(dir.path() / name) << "text\n";
  DataFiles f = find_data_files(dir.path());
  std::vector<std::string> train, valid;
  for (const auto& p : f.train) train.push_back(p.filename().string());
  for (const auto& p : f.valid) valid.push_back(p.filename().string());
  EXPECT_EQ(train, (std::vector<std::string>{"train-00.txt", "train-01.txt"}));
  EXPECT_EQ(valid, (std::vector<std::string>{"valid.txt"}));

  test::TempDir only_test;
  std::ofstream(only_test.path() / "test.txt") << "text\n";
  EXPECT_THROW(find_data_files(only_test.path()), Error);
  // A file named explicitly is used as given.
  EXPECT_EQ(find_data_files(only_test.path() / "test.txt").train.size(), 1u);
}

}  // namespace
}  // namespace thinkeys
