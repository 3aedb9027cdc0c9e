// `thinkeys plan`: a thin layer over src/plan/ (the planner) and the
// bandwidth probe.
#include <algorithm>
#include <cstdio>
#include <memory>
#include <thread>

#include "bench/bandwidth_probe.h"
#include "cli/commands.h"
#include "plan/byte_size.h"
#include "plan/capacity_plan.h"
#include "plan/model_source.h"
#include "plan/plan_report.h"
#include "util/error.h"

namespace thinkeys::cli {

Command add_plan(CLI::App& app) {
  struct Opts {
    std::string model, memory, reserve = "1GiB", weights, bandwidth;
    std::vector<long long> ctx = {4096, 32768, 131072};
    std::vector<double> key_ratio;
    int key_rank = 0;
    std::vector<std::string> cache_k = {"f16", "int8", "int4"}, cache_v = {"f16"};
    int block_tokens = CacheSpec{}.block_tokens;
    bool json = false;
  };
  auto o = std::make_shared<Opts>();
  auto* sub = app.add_subcommand(
      "plan", "How many sequences of what length fit a memory budget (from config.json alone)");
  sub->add_option("model", o->model,
                  "Hugging Face model directory, its config.json, or a llama2.c .bin")
      ->required();
  sub->add_option("--memory", o->memory, "Memory budget: 24GiB, 80GB, 8x80GB (devices x size), ...")
      ->required();
  sub->add_option("--ctx", o->ctx, "Context lengths, one table each")
      ->delimiter(',')
      ->capture_default_str();
  auto* ratio = sub->add_option("--key-ratio", o->key_ratio,
                                "Key widths as fractions of the full width, e.g. 1,0.5,0.25,0.125 "
                                "(default: the config's, plus d/4 for a model without thin keys)")
                    ->delimiter(',');
  sub->add_option("--key-rank", o->key_rank, "One key width R for every layer")->excludes(ratio);
  sub->add_option("--cache-k", o->cache_k, "Key dtypes: f32, f16, bf16, int8, int4")
      ->delimiter(',')
      ->capture_default_str();
  sub->add_option("--cache-v", o->cache_v, "Value dtypes")->delimiter(',')->capture_default_str();
  sub->add_option("--block-tokens", o->block_tokens, "Tokens per cache block")
      ->capture_default_str();
  sub->add_option("--weights", o->weights,
                  "Count weights as f32, f16, bf16, int8 or int4 (as --weights int8/int4 holds "
                  "them, scales included), or none (default: as the checkpoint stores them)");
  sub->add_option(
         "--reserve", o->reserve,
         "Kept out of the cache for activations, logits and workspace, per device (0 for none)")
      ->capture_default_str();
  sub->add_option("--bandwidth", o->bandwidth,
                  "Memory bandwidth in GB/s for the decode-time floor; without a value, "
                  "probe this machine")
      ->expected(0, 1);
  sub->add_flag("--json", o->json, "Print JSON");
  return {
      sub, [o, sub] {
        const PlanModel model = read_plan_model(o->model);
        PlanOptions opt;
        const MemorySize memory = parse_memory_size(o->memory);
        opt.memory_bytes = memory.bytes;
        opt.devices = memory.devices;
        if (o->reserve != "0") {
          const MemorySize reserve = parse_memory_size(o->reserve);
          if (reserve.devices != 1) throw Error("--reserve is per device: give one size");
          opt.reserve_bytes = reserve.bytes;
        } else {
          opt.reserve_bytes = 0;
        }
        opt.contexts = o->ctx;
        for (double r : o->key_ratio) opt.keys.push_back({KeyChoice::Kind::Ratio, r});
        if (sub->count("--key-rank") > 0)
          opt.keys.push_back({KeyChoice::Kind::Rank, 1, o->key_rank});
        opt.key_dtypes.clear();
        for (const auto& k : o->cache_k) opt.key_dtypes.push_back(parse_cache_dtype(k));
        opt.value_dtypes.clear();
        for (const auto& v : o->cache_v) opt.value_dtypes.push_back(parse_cache_dtype(v));
        if (o->block_tokens <= 0) throw Error("--block-tokens must be positive");
        opt.block_tokens = o->block_tokens;
        opt.weights = o->weights;
        if (sub->count("--bandwidth") > 0) {
          if (o->bandwidth.empty() || o->bandwidth == "probe") {
            const int threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
            std::fprintf(stderr, "probing this machine's memory read bandwidth (%d threads)...\n",
                         threads);
            opt.bandwidth_gb_per_s = probe_read_bandwidth(threads).gb_per_s;
          } else {
            try {
              std::size_t used = 0;
              opt.bandwidth_gb_per_s = std::stod(o->bandwidth, &used);
              if (used != o->bandwidth.size()) throw std::invalid_argument("trailing");
            } catch (const std::exception&) {
              throw Error("--bandwidth '" + o->bandwidth +
                          "' is not a number of GB/s (or 'probe')");
            }
          }
        }
        CapacityPlan plan = plan_capacity(model.config, opt);
        for (const auto& what : model.unsupported)
          plan.notes.push_back("the runtime refuses this model (" + what +
                               "); that changes no tensor or cache shape, so it is planned anyway");
        const std::string text =
            o->json ? plan_json(plan, model.source) : plan_table_text(plan, model.source);
        std::fwrite(text.data(), 1, text.size(), stdout);
      }};
}

}  // namespace thinkeys::cli
