#include "cli/bench_prefill.h"

#include <algorithm>
#include <cstdio>
#include <memory>
#include <nlohmann/json.hpp>
#include <thread>

#include "bench/load_average.h"
#include "bench/model_decode_bench.h"
#include "bench/prefill_bench.h"
#include "model/weight_format_choice.h"
#include "util/error.h"
#include "util/threads.h"

namespace thinkeys::cli {
void run_prefill_bench(const PrefillCliOptions& opt) {
  const int threads = opt.threads > 0 ? opt.threads : compute_threads();
  const ModelDecodeShape shape = find_model_decode_shape(opt.shape);
  if (opt.weights.empty()) throw Error("bench --prefill-model: no weight formats given");
  for (const auto& w : opt.weights) parse_weight_format(w);  // before building any model
  std::vector<std::shared_ptr<const Model>> models;
  std::vector<PrefillCase> cases;
  for (const auto& w : opt.weights) {
    models.push_back(model_decode_model(shape, 1, w));  // the same random model in each format
    cases.push_back({models.back().get(), w});
  }
  const std::string load0 = load_average();
  const std::vector<PrefillRow> rows =
      bench_prefill(cases, opt.tokens, opt.repeats, threads, !opt.json);
  const std::string load1 = load_average();
  const double base = rows.front().median_s;
  if (opt.json) {
    nlohmann::json j = {{"shape", shape.name},
                        {"tokens", opt.tokens},
                        {"repeats", opt.repeats},
                        {"threads", threads},
                        {"load_average_before", load0},
                        {"load_average_after", load1},
                        {"rows", nlohmann::json::array()}};
    for (const auto& r : rows)
      j["rows"].push_back({{"weights", r.weights},
                           {"best_s", r.best_s},
                           {"median_s", r.median_s},
                           {"tokens_per_s", r.tokens / r.median_s},
                           {"speed_vs_first", base / r.median_s},
                           {"cpu_util", r.cpu_util}});
    std::printf("%s\n", j.dump(2).c_str());
    return;
  }
  std::printf(
      "prefill of %d random tokens into a paged f16 cache (BatchDecoder::add): %s shape, 12 "
      "layers, width 768, 12 query heads of 64, SwiGLU 2048, vocab 32000\n",
      opt.tokens, shape.name.c_str());
  std::printf(
      "%d threads; load average %s before, %s after; one warm-up, then %d repeats per format, "
      "round-robin; tok/s = tokens / median; speed vs %s = its median / this median\n\n",
      threads, load0.c_str(), load1.c_str(), opt.repeats, rows.front().weights.c_str());
  std::printf("| weights | best s | median s | tok/s | speed vs %s | cpu util |\n",
              rows.front().weights.c_str());
  std::printf("|---|---:|---:|---:|---:|---:|\n");
  for (const auto& r : rows)
    std::printf("| %s | %.3f | %.3f | %.0f | %.2fx | %.0f%% |\n", r.weights.c_str(), r.best_s,
                r.median_s, r.tokens / r.median_s, base / r.median_s, 100 * r.cpu_util);
}

}  // namespace thinkeys::cli
