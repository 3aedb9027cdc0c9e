// `thinkeys plan` through the real CLI (its bad input is in
// test_bad_input.cpp, which CI also runs under ASan + UBSan), and the
// planner's weight count against models the runtime really builds and loads
// (a second implementation: the tensors themselves).
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <nlohmann/json.hpp>

#include "cache/paged_kv_cache.h"
#include "checkpoint/model_loader.h"
#include "compress/compressor.h"
#include "io/hf_config.h"
#include "model/random_init.h"
#include "plan/capacity_plan.h"
#include "plan/model_source.h"
#include "plan/parameter_count.h"
#include "test_support.h"
#include "train/model_builder.h"
#include "util/error.h"

namespace thinkeys {
namespace {

const std::string kConfigs = std::string(THINKEYS_TEST_DATA) + "/configs/";

using test::CliResult;

CliResult plan(const std::string& args) { return test::run_cli("plan " + args); }

TEST(PlanCli, JsonHasThePapersFigures) {
  const CliResult r =
      plan(kConfigs + "llama-2-7b.json --memory 80GB --ctx 128000 --cache-k f16 --json");
  ASSERT_EQ(r.status, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  const auto& rows = j["contexts"][0]["rows"];
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows[0]["bytes_per_sequence"], 67108864000LL);  // 524,288 B x 128,000
  EXPECT_EQ(rows[1]["bytes_per_sequence"], 41943040000LL);  // keys at d/4
  EXPECT_EQ(rows[1]["key_bytes_per_token"], 65536);
}

TEST(PlanCli, BandwidthAddsTheDecodeFloor) {
  const CliResult r = plan(kConfigs + "llama-3-8b.json --memory 80GB --ctx 4096 --cache-k f16 " +
                           "--key-ratio 1 --bandwidth 50 --json");
  ASSERT_EQ(r.status, 0) << r.err;
  const auto row = nlohmann::json::parse(r.out)["contexts"][0]["rows"][0];
  // bf16 weights without the embedding table, plus 4096 x 131,072 B, at 5e10 B/s.
  const double bytes = 2.0 * (8030261248.0 - 128256.0 * 4096) + 4096.0 * 131072;
  EXPECT_NEAR(row["step_ms_one_sequence"].get<double>(), bytes / 5e10 * 1e3, 1e-6);
}

ModelConfig tiny(const std::string& arch, int kv_heads) {
  if (arch == "gpt2") return gpt2_config({96, 32, 2, 4, 4, 8, 64, 40});
  return llama_config({96, 32, 3, 4, kv_heads, 8, 48, 64});
}

TEST(PlanWeights, CountMatchesTheRuntimesTensors) {
  std::vector<Model> models;
  models.push_back(random_model(tiny("gpt2", 4), 1));
  models.push_back(random_model(tiny("llama", 2), 2));
  ModelConfig untied = tiny("llama", 1);
  untied.tied_embeddings = false;
  untied.qkv_bias = untied.o_bias = untied.mlp_bias = true;
  models.push_back(random_model(untied, 3));
  // Thin keys after training, every RoPE mode, and a key latent shared by two KV heads.
  for (RopeMode mode : {RopeMode::Post, RopeMode::Latent, RopeMode::Pairs}) {
    CompressOptions o;
    o.method = CompressMethod::Svd;
    o.rope = mode;
    o.ranks.key_rank = 4;
    models.push_back(compress_model(models[1], o, {}));
  }
  CompressOptions shared;
  shared.method = CompressMethod::Svd;
  shared.rope = RopeMode::Latent;
  shared.share = 2;
  shared.ranks.key_rank = 6;
  models.push_back(compress_model(models[1], shared, {}));
  // Trained from scratch: thin keys (d_select), MLA, LRKV.
  for (auto [d_select, latent, rank] : {std::tuple{8, 0, 0}, {0, 12, 0}, {0, 0, 3}}) {
    ArchConfig a;
    a.vocab_size = 64;
    a.dim = 32;
    a.n_layers = 2;
    a.n_heads = 4;
    a.d_select = d_select;
    a.mla_latent = latent;
    a.lrkv_rank = rank;
    a.ctx = 32;
    models.push_back(init_model(make_model_config(a), 4));
  }
  for (const Model& m : models) {
    const ParameterCount n = count_parameters(m.config);
    EXPECT_EQ(n.total, m.parameter_count()) << hf_config_json(m.config);
    EXPECT_EQ(n.per_step * 4, m.weight_bytes()) << m.config.architecture;
    int64_t maps = 0;
    for (const auto& L : m.weights.layers)
      for (const at::Tensor* t : {&L.kv_up, &L.k_res_up, &L.v_res_up})
        if (t->defined()) maps += t->numel();
    EXPECT_EQ(n.float_maps, maps) << m.config.architecture;
  }
}

TEST(PlanWeights, Llama2cHeaderGivesTheLoadersConfig) {
  THINKEYS_REQUIRE_SHARED(file, "models/stories260K/stories260K.bin");
  const Model m = load_model(file);
  const PlanModel p = read_plan_model(file);
  EXPECT_EQ(p.config.n_layers, m.config.n_layers);
  EXPECT_EQ(p.config.n_kv_heads, m.config.n_kv_heads);
  EXPECT_EQ(p.config.head_dim, m.config.head_dim);
  EXPECT_EQ(p.config.tied_embeddings, m.config.tied_embeddings);
  EXPECT_EQ(count_parameters(p.config).total, m.parameter_count());
  // Its plan's sequence count is what a pool of the model's own cache shape holds.
  PlanOptions o;
  o.memory_bytes = std::size_t{16} << 20;
  o.reserve_bytes = 0;
  o.contexts = {200};
  o.keys = {{}};
  o.key_dtypes = {CacheDType::Int4};
  const CapacityPlan plan = plan_capacity(p.config, o);
  CacheSpec spec;
  spec.key_dtype = CacheDType::Int4;
  spec.budget_bytes = plan.cache_budget_bytes;
  spec.huge_pages = false;
  PagedKVCache cache(cache_shape(m.config), spec);
  long long fit = 0;
  for (;; ++fit) {
    const int id = cache.add_sequence();
    try {
      cache.reserve(id, 200);
    } catch (const Error&) {
      break;
    }
  }
  EXPECT_EQ(plan.tables[0].rows[0].capacity.sequences, fit);
  EXPECT_GT(fit, 0);
}

}  // namespace
}  // namespace thinkeys
