#include "bench/prefill_bench.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <memory>
#include <random>

#include "bench/cpu_clock.h"
#include "model/weights.h"
#include "runtime/batch_decoder.h"
#include "util/error.h"

namespace thinkeys {
namespace {

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const std::size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

}  // namespace

std::vector<PrefillRow> bench_prefill(const std::vector<PrefillCase>& cases, int tokens,
                                      int repeats, int threads, bool progress) {
  if (cases.empty()) throw Error("bench --prefill-model: no weight formats given");
  if (tokens < 1 || repeats < 1) throw Error("bench --prefill-model: need tokens and repeats >= 1");
  const ModelConfig& c = cases.front().model->config;
  std::mt19937 rng(1234);
  std::uniform_int_distribution<int32_t> pick(0, c.vocab_size - 1);
  std::vector<int32_t> prompt(tokens);
  for (auto& t : prompt) t = pick(rng);

  std::vector<std::unique_ptr<BatchDecoder>> decoders;
  for (const auto& k : cases) {
    BatchDecoderOptions o;
    o.threads = threads;
    decoders.push_back(std::make_unique<BatchDecoder>(*k.model, o));
  }
  using clock = std::chrono::steady_clock;
  std::vector<std::vector<double>> wall(cases.size());
  std::vector<double> cpu(cases.size(), 0.0);
  for (int r = -1; r < repeats; ++r)  // r = -1: warm-up (first-touch, BLAS buffers)
    for (std::size_t i = 0; i < cases.size(); ++i) {
      const double c0 = process_cpu_seconds();
      const auto t0 = clock::now();
      const int id = decoders[i]->add(prompt);
      const double s = std::chrono::duration<double>(clock::now() - t0).count();
      const double cs = process_cpu_seconds() - c0;
      decoders[i]->remove(id);
      if (r < 0) continue;
      wall[i].push_back(s);
      cpu[i] += cs;
      if (progress)
        std::fprintf(stderr, "prefill %s repeat %d/%d: %.3f s (%.0f tokens/s)\n",
                     cases[i].weights.c_str(), r + 1, repeats, s, tokens / s);
    }
  std::vector<PrefillRow> rows;
  for (std::size_t i = 0; i < cases.size(); ++i) {
    PrefillRow row;
    row.weights = cases[i].weights;
    row.tokens = tokens;
    row.repeats = repeats;
    row.best_s = *std::min_element(wall[i].begin(), wall[i].end());
    row.median_s = median(wall[i]);
    double total = 0;
    for (double s : wall[i]) total += s;
    row.cpu_util = cpu[i] / (total * threads);
    rows.push_back(row);
  }
  return rows;
}

}  // namespace thinkeys
