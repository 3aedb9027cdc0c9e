// thinkeys train / finetune through the command line: bad configurations fail
// with one clear line; a tiny training produces a model the other commands
// load; `finetune --train qk` changes only query/key maps, bit for bit, and
// keeps them at their rank; `--control` is the plain fine-tune of the original.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cmath>
#include <map>
#include <nlohmann/json.hpp>
#include <set>

#include "checkpoint/hf_checkpoint.h"
#include "compress/compressor.h"
#include "model/kv_cache.h"
#include "model/random_init.h"
#include "test_support.h"
#include "train/data_parallel.h"
#include "train/model_builder.h"
#include "train/model_output.h"
#include "train/trainable.h"

namespace thinkeys {
namespace {

using test::CliResult;
using test::expect_clean_failure;

// As before the shared helper: one thread, and five minutes before timeout kills it.
CliResult run_cli(const std::string& args) { return test::run_cli("--threads 1 " + args, 300); }

class TrainCli : public ::testing::Test {
 protected:
  void SetUp() override {
    THINKEYS_REQUIRE_SHARED(tok, "models/gpt2-tokenizer");
    tokenizer_ = tok;
    test::write_bytes(
        tmp_ / "data.txt",
        test::random_sentences(
            3, {"the", "cat", "sat", "on", "a", "mat", "and", "then", "it", "slept"}, 3000));
    common_ = " --tokenizer " + tokenizer_.string() + " --data " + (tmp_ / "data.txt").string() +
              " --cache-dir " + (tmp_ / "cache").string();
  }
  test::TempDir tmp_;
  std::filesystem::path tokenizer_;
  std::string common_;
};

TEST_F(TrainCli, BadConfigsFailWithOneClearLine) {
  const std::string out = " -o " + (tmp_ / "m").string();
  expect_clean_failure(run_cli("train --dim 32 --heads 5" + common_ + out),
                       "heads (5) must divide the width (32)");
  expect_clean_failure(run_cli("train --dim 32 --heads 4 --kv-heads 3" + common_ + out),
                       "KV heads (3) must divide the number of heads (4)");
  expect_clean_failure(run_cli("train --dim 32 --heads 4 --d-select 64" + common_ + out),
                       "exceeds the head dimension");
  expect_clean_failure(run_cli("train --arch gpt2 --dim 32 --heads 4 --kv-heads 2" + common_ + out),
                       "no grouped-query attention");
  expect_clean_failure(run_cli("train --dim 32 --heads 4 --tokenizer " + tokenizer_.string() +
                               " --data " + (tmp_ / "missing.txt").string() + out),
                       "not found");
  expect_clean_failure(run_cli("train --dim 32 --heads 4 --lr -1" + common_ + out),
                       "learning rate");
  EXPECT_FALSE(std::filesystem::exists(tmp_ / "m" / "config.json"));
}

TEST_F(TrainCli, TinyTrainingGivesAModelTheRuntimeLoads) {
  const auto out = tmp_ / "m";
  test::write_bytes(tmp_ / "cfg.json", R"({"arch": "llama", "dim": 32, "layers": 1, "heads": 4,
      "kv_heads": 2, "d_select": 16, "ctx": 16, "batch": 2, "steps": 3, "warmup": 1})");
  auto r = run_cli("train --config " + (tmp_ / "cfg.json").string() + " --steps 4" + common_ +
                   " --json -o " + out.string());
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.out.find("\"steps\": 4"), std::string::npos) << r.out;  // the flag overrides the file
  Model m = load_hf_checkpoint(out);
  EXPECT_EQ(m.config.n_kv_heads, 2);
  EXPECT_EQ(m.config.key_width(0), 4);
  EXPECT_TRUE(std::filesystem::exists(out / "encoder.json"));
  EXPECT_TRUE(std::filesystem::exists(out / "checkpoint" / "optimizer.pt"));
  auto info = run_cli("info " + out.string());
  EXPECT_EQ(info.status, 0) << info.err;
  auto ev = run_cli("eval " + out.string() + " --data " + (tmp_ / "data.txt").string() +
                    " --ctx 16 --stride 8 --max-tokens 64 --json");
  EXPECT_EQ(ev.status, 0) << ev.err;
}

std::map<std::string, at::Tensor> canonical(Model m) {
  std::map<std::string, at::Tensor> out;
  for (auto& p : prepare_for_training(m, TrainScope::All)) out[p.name] = p.tensor;
  return out;
}

// A small GPT-2 model and its keys compressed to rank 3, saved under tmp.
void save_base_and_compressed(const std::filesystem::path& tmp,
                              const std::filesystem::path& tokenizer) {
  const ModelConfig c = gpt2_config({50257, 32, 2, 4, 4, 8, 64, 32});
  Model base = random_model(c, 3, 0.05);
  CompressOptions o;
  o.method = CompressMethod::Svd;
  o.ranks.key_rank = 3;
  Model comp = compress_model(base, o, {});
  save_trained_model(base, tmp / "base", tokenizer);
  save_trained_model(comp, tmp / "comp", tokenizer);
}

TEST_F(TrainCli, FinetuneQkLeavesEveryOtherTensorBitIdentical) {
  save_base_and_compressed(tmp_.path(), tokenizer_);

  auto r =
      run_cli("finetune " + (tmp_ / "comp").string() + " --train qk --loss kd --teacher " +
              (tmp_ / "base").string() + " --data " + (tmp_ / "data.txt").string() +
              " --cache-dir " + (tmp_ / "cache").string() +
              " --ctx 16 --batch 2 --max-tokens 200 --lr 1e-2 --json -o " + (tmp_ / "ft").string());
  ASSERT_EQ(r.status, 0) << r.err;
  Model comp = load_hf_checkpoint(tmp_ / "comp"), ft = load_hf_checkpoint(tmp_ / "ft");
  // The point of fine-tuning thin keys: the key maps stay at rank 3, so the
  // cache keeps its size.
  for (int l = 0; l < 2; ++l) EXPECT_EQ(ft.config.key_width(l), 3) << "layer " << l;
  EXPECT_EQ(KVCache(ft.config, 16).allocated_bytes(), KVCache(comp.config, 16).allocated_bytes());
  auto before = canonical(comp);
  auto after = canonical(ft);
  ASSERT_EQ(before.size(), after.size());
  std::set<std::string> moved;
  for (const auto& [name, t] : before) {
    ASSERT_EQ(t.sizes(), after.at(name).sizes()) << name << " was reshaped";
    const bool qk = name.ends_with(".wq") || name.ends_with(".wk") || name.ends_with(".bq") ||
                    name.ends_with(".bk");
    if (qk) {
      if (!at::equal(t, after.at(name))) moved.insert(name);
    } else {
      EXPECT_TRUE(at::equal(t, after.at(name))) << name << " changed";
    }
  }
  for (int l = 0; l < 2; ++l)
    for (const char* w : {"wq", "wk"})
      EXPECT_TRUE(moved.count("layers." + std::to_string(l) + "." + w))
          << "layers." << l << "." << w << " did not train";
}

// --control fine-tunes the original model "identically": the same as running
// finetune on the original alone with the same options, and the reported gap
// is the perplexity ratio of the two validation losses.
TEST_F(TrainCli, FinetuneControlIsThePlainFinetuneOfTheOriginal) {
  save_base_and_compressed(tmp_.path(), tokenizer_);
  const std::string args = " --train qk --data " + (tmp_ / "data.txt").string() + " --valid " +
                           (tmp_ / "data.txt").string() + " --cache-dir " +
                           (tmp_ / "cache").string() +
                           " --ctx 16 --batch 2 --max-tokens 200 --lr 1e-2 --json";
  auto r = run_cli("finetune " + (tmp_ / "comp").string() + args + " --teacher " +
                   (tmp_ / "base").string() + " --control -o " + (tmp_ / "ft").string());
  ASSERT_EQ(r.status, 0) << r.err;
  auto alone =
      run_cli("finetune " + (tmp_ / "base").string() + args + " -o " + (tmp_ / "plain").string());
  ASSERT_EQ(alone.status, 0) << alone.err;
  ASSERT_TRUE(std::filesystem::exists(tmp_ / "ft-control" / "config.json"));

  auto control = canonical(load_hf_checkpoint(tmp_ / "ft-control"));
  auto plain = canonical(load_hf_checkpoint(tmp_ / "plain"));
  auto base = canonical(load_hf_checkpoint(tmp_ / "base"));
  ASSERT_EQ(control.size(), plain.size());
  for (const auto& [name, t] : control) {
    EXPECT_TRUE(at::equal(t, plain.at(name))) << name << " differs from the plain fine-tune";
    ASSERT_EQ(t.sizes(), base.at(name).sizes()) << name << ": the control is the full-width model";
  }
  EXPECT_FALSE(at::equal(control.at("layers.0.wk"), base.at("layers.0.wk")))
      << "control did not train";

  const auto j = nlohmann::json::parse(r.out);
  const auto p = nlohmann::json::parse(alone.out);
  EXPECT_EQ(j["control"]["steps"], j["result"]["steps"]);
  EXPECT_DOUBLE_EQ(j["control"]["val_loss_after"].get<double>(),
                   p["result"]["val_loss_after"].get<double>());
  const double gap = 100.0 * (std::exp(j["result"]["val_loss_after"].get<double>()) /
                                  std::exp(j["control"]["val_loss_after"].get<double>()) -
                              1.0);
  EXPECT_NEAR(j["gap_vs_control_pct"].get<double>(), gap, 1e-9 * (1 + std::abs(gap)));
}

TEST_F(TrainCli, FinetuneOnTwoRanksMatchesOneProcessOnTheConcatenatedBatch) {
  if (!data_parallel_available()) GTEST_SKIP() << "built without Gloo";
  save_base_and_compressed(tmp_.path(), tokenizer_);
  const std::string args =
      "finetune " + (tmp_ / "comp").string() + " --train qk --loss kd --teacher " +
      (tmp_ / "base").string() + " --data " + (tmp_ / "data.txt").string() + " --cache-dir " +
      (tmp_ / "cache").string() + " --ctx 16 --max-tokens 300 --lr 1e-2 --json";
  auto one = run_cli(args + " --batch 4 -o " + (tmp_ / "one").string());
  ASSERT_EQ(one.status, 0) << one.err;
  auto two = run_cli(args + " --batch 2 --nproc 2 -o " + (tmp_ / "two").string());
  ASSERT_EQ(two.status, 0) << two.err;
  // Rank 0 alone reports, with the same number of steps.
  EXPECT_NE(two.out.find("\"steps\""), std::string::npos) << two.out;
  EXPECT_EQ(one.out.substr(one.out.find("\"steps\"")).substr(0, 20),
            two.out.substr(two.out.find("\"steps\"")).substr(0, 20));
  auto before = canonical(load_hf_checkpoint(tmp_ / "comp"));
  auto a = canonical(load_hf_checkpoint(tmp_ / "one"));
  auto b = canonical(load_hf_checkpoint(tmp_ / "two"));
  ASSERT_EQ(a.size(), b.size());
  int moved = 0;
  for (const auto& [name, t] : a) {
    const at::Tensor& u = b.at(name);
    // Averaging two half-batch gradients equals the full-batch gradient up
    // to float summation order.
    EXPECT_LE((t - u).abs().max().item<double>(), 1e-5 * (1 + t.abs().max().item<double>()))
        << name;
    moved += !at::equal(t, before.at(name));
  }
  EXPECT_GE(moved, 4) << "nothing trained";
}

}  // namespace
}  // namespace thinkeys
