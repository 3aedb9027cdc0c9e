// thinkeys demo: thin keys end to end in a couple of minutes (src/experiments/demo.h).
#include <cstdio>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "cli/common.h"
#include "experiments/demo.h"
#include "util/shared_data.h"

namespace thinkeys::cli {
namespace {

std::string metric(const DemoRow& r) {
  char buf[64];
  if (r.accuracy >= 0)
    std::snprintf(buf, sizeof buf, "acc %.1f%%", 100.0 * r.accuracy);
  else if (r.kl >= 0)
    std::snprintf(buf, sizeof buf, "ppl %.3f (KL %.4f, top-1 %.1f%%)", r.perplexity, r.kl,
                  100.0 * r.top1);
  else
    std::snprintf(buf, sizeof buf, "ppl %.3f", r.perplexity);
  return buf;
}

void print_text(const DemoResult& res, const DemoOptions& o) {
  std::printf(
      "Content retrieval among N = %d keys (8 pairs, then SEP and a query; chance %.1f%%).\n"
      "Model: pre-LN GPT-2 style, d_model 64, 4 heads (head_dim 16), 4 layers, trained with "
      "Adam 1e-3, batch 64, at most %lld steps (stops once >= 95%% held).\n"
      "Accuracy on %d fresh sequences. KV bytes/token: allocated = a real f32 KVCache, f16 = "
      "keys and values at 2 bytes.\n\n",
      o.n, 100.0 / o.n, static_cast<long long>(o.max_steps), o.eval_sequences);
  std::printf("%-46s %-10s %-34s %-14s %s\n", "variant", "keys/head", "quality", "KV B/tok f32",
              "KV B/tok f16");
  std::string part;
  for (const auto& r : res.rows) {
    if (r.part != part && !part.empty()) std::printf("\n[%s]\n", r.part.c_str());
    part = r.part;
    std::string width = std::to_string(r.key_width) + " / " + std::to_string(r.head_dim);
    std::printf("%-46s %-10s %-34s %-14.0f %lld\n", r.variant.c_str(), width.c_str(),
                metric(r).c_str(), r.kv_bytes_allocated, static_cast<long long>(r.kv_bytes_f16));
  }
  for (const auto& n : res.notes) std::printf("\nnote: %s\n", n.c_str());
  std::printf("\ndemo took %.0f s\n", res.seconds);
}

}  // namespace

Command add_demo(CLI::App& app) {
  struct Opts {
    DemoOptions demo;
    bool json = false, no_shared = false;
  };
  auto opts = std::make_shared<Opts>();
  auto* sub = app.add_subcommand(
      "demo",
      "Thin keys in a couple of minutes: train full and thin-key models on a retrieval task, "
      "compress the full model's keys, compare accuracy and KV bytes (plus stories260K if "
      "../shared exists)");
  sub->add_option("--steps", opts->demo.max_steps, "Most training steps per model")
      ->check(CLI::PositiveNumber);
  sub->add_option("--seed", opts->demo.seed, "Seed for models and data");
  sub->add_flag("--no-shared", opts->no_shared, "Skip the stories260K part");
  sub->add_flag("--json", opts->json, "Print JSON");
  sub->add_option("--jobs", opts->demo.jobs, "Models trained at the same time")
      ->check(CLI::PositiveNumber);
  return {
      sub, [opts, &app] {
        single_blas_thread_unless_asked(app);
        DemoOptions o = opts->demo;
        if (!opts->no_shared) o.shared_dir = find_shared_dir();
        o.show_progress = true;  // stderr, and only on a terminal
        DemoResult res = run_demo(o);
        if (!opts->json) {
          print_text(res, o);
          return;
        }
        nlohmann::json rows = nlohmann::json::array();
        auto opt = [](double v) { return v >= 0 ? nlohmann::json(v) : nlohmann::json(nullptr); };
        for (const auto& r : res.rows)
          rows.push_back({{"part", r.part},
                          {"variant", r.variant},
                          {"key_width", r.key_width},
                          {"head_dim", r.head_dim},
                          {"accuracy", opt(r.accuracy)},
                          {"perplexity", opt(r.perplexity)},
                          {"kl", opt(r.kl)},
                          {"top1", opt(r.top1)},
                          {"steps", r.steps},
                          {"converge_step", r.converge_step >= 0 ? nlohmann::json(r.converge_step)
                                                                 : nlohmann::json(nullptr)},
                          {"kv_bytes_per_token_allocated", r.kv_bytes_allocated},
                          {"kv_bytes_per_token_f16", r.kv_bytes_f16}});
        std::printf("%s\n",
                    nlohmann::json{{"rows", rows}, {"notes", res.notes}, {"seconds", res.seconds}}
                        .dump(2)
                        .c_str());
      }};
}

}  // namespace thinkeys::cli
