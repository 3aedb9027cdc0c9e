#include "cli/bench_decode.h"

#include <algorithm>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>

#include "bench/bandwidth_probe.h"
#include "bench/decode_bench.h"
#include "bench/relative_time.h"
#include "bench/sweep_selection.h"
#include "cli/common.h"
#include "kernels/decode_attention.h"
#include "util/error.h"

namespace thinkeys::cli {

void run_decode_bench(const DecodeBenchOptions& o) {
  const int threads = o.threads > 0
                          ? o.threads
                          : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  const std::vector<DecodeBenchShape> shapes = select_decode_bench_shapes(o.shapes);
  const std::vector<DecodeBenchCache> caches = select_decode_bench_caches(o.caches);
  // Bandwidth before and after the sweep and next to every cell (the streams
  // that evict the caches between repetitions): the machine is shared, so
  // the spread says how much to trust ratios against it.
  StreamBuffer stream(threads);
  const BandwidthResult bw0 = stream.probe();
  std::vector<DecodeBenchRow> rows;
  for (const auto& sh : shapes)
    for (int ctx : o.ctx)
      for (int batch : o.batch)
        for (const auto& cc : caches) {
          if (!o.json)
            std::fprintf(stderr, "%s %s ctx %d batch %d ...\n", sh.name.c_str(), cc.name.c_str(),
                         ctx, batch);
          rows.push_back(bench_decode_attention(sh, cc, ctx, batch, stream, o.repeats,
                                                o.block_tokens, o.huge_pages));
        }
  const BandwidthResult bw1 = stream.probe();
  // The strictest reference: the best read rate seen anywhere in the run.
  const double bw = best_read_bandwidth(bw0.gb_per_s, bw1.gb_per_s, rows);
  const std::vector<double> vs_full = decode_time_vs_full_f16(rows);
  auto tok_s = [&](const DecodeBenchRow& r) { return attention_only_tokens_per_s(r, o.layers); };
  // "-" when the sweep has no full-f16 row to compare with.
  auto ratio_text = [](double x) {
    char buf[32];
    std::snprintf(buf, sizeof(buf), "%.2fx", x);
    return x > 0 ? std::string(buf) : std::string("-");
  };

  if (o.json) {
    nlohmann::json j = {
        {"threads", threads},
        {"target", decode_attention_target()},
        {"read_bandwidth_gb_s_before", bw0.gb_per_s},
        {"read_bandwidth_gb_s_after", bw1.gb_per_s},
        {"read_bandwidth_plain_gb_s", std::max(bw0.plain_gb_per_s, bw1.plain_gb_per_s)},
        {"read_bandwidth_prefetch_gb_s", std::max(bw0.prefetch_gb_per_s, bw1.prefetch_gb_per_s)},
        {"read_bandwidth_best_gb_s", bw},
        {"probe_bytes", stream.bytes()},
        {"block_tokens", o.block_tokens},
        {"huge_pages", o.huge_pages},
        {"layers_for_tokens_per_s", o.layers},
        {"rows", nlohmann::json::array()}};
    for (size_t i = 0; i < rows.size(); ++i) {
      const DecodeBenchRow& r = rows[i];
      const auto cc = find_decode_bench_cache(r.cache);
      j["rows"].push_back({{"shape", r.shape},
                           {"cache", r.cache},
                           {"key_dtype", to_string(cc.key_dtype)},
                           {"value_dtype", to_string(cc.value_dtype)},
                           {"key_width", r.key_width},
                           {"head_dim", r.head_dim},
                           {"n_heads", r.n_heads},
                           {"n_kv_heads", r.n_kv_heads},
                           {"ctx", r.ctx},
                           {"batch", r.batch},
                           {"bytes_read", r.bytes_read},
                           {"ms", r.seconds * 1e3},
                           {"resident_ms", r.resident_seconds * 1e3},
                           {"gb_per_s", r.gb_per_s},
                           {"cpu_seconds", r.cpu_seconds},
                           {"cpu_util", r.cpu_util},
                           {"probe_gb_per_s", r.probe_gb_per_s},
                           {"fraction_of_probe", r.gb_per_s / r.probe_gb_per_s},
                           {"fraction_of_read_bandwidth", r.gb_per_s / bw},
                           {"time_vs_full_f16", vs_full[i]},
                           {"attention_only_tokens_per_s", tok_s(r)}});
    }
    std::printf("%s\n", j.dump(2).c_str());
    return;
  }
  std::printf(
      "decode attention, one layer per step; kernel target %s, %d threads, %d tokens per block, "
      "cache pool on %s pages\n",
      decode_attention_target(), threads, o.block_tokens,
      o.huge_pages ? "transparent huge (madvise)" : "4 KiB");
  std::printf(
      "read bandwidth (streaming sum over %s on huge pages, %d threads, best of plain and "
      "software-prefetched): %.1f GB/s before, %.1f GB/s after (plain %.1f / %.1f); the same "
      "stream evicts the caches before every repetition, and its rate there is the 'probe' "
      "column; '%% of probe' is against that, '%% of best' against the best read rate of the "
      "whole run (%.1f GB/s); 'resident ms' is the same call repeated with nothing evicted "
      "(the cache from L2 / L3 where it fits)\n",
      human_bytes(static_cast<double>(stream.bytes())).c_str(), threads, bw0.gb_per_s, bw1.gb_per_s,
      bw0.plain_gb_per_s, bw1.plain_gb_per_s, bw);
  std::string shape_text;
  for (const auto& sh : shapes)
    shape_text += (shape_text.empty() ? "" : ", ") + sh.name + " = " + std::to_string(sh.n_heads) +
                  " query / " + std::to_string(sh.n_kv_heads) + " KV heads of " +
                  std::to_string(sh.head_dim);
  std::printf(
      "shapes: %s; tok/s = batch / (%d layers x attention time), attention only; "
      "cpu util = the threads' CPU time / (wall time x threads) over the timed run\n\n",
      shape_text.c_str(), o.layers);
  std::printf(
      "| shape | cache | K | V | r | ctx | batch | bytes/step | ms | resident ms | GB/s | probe "
      "GB/s | %% of probe | %% of best | time vs full-f16 | attn-only tok/s | cpu util |\n");
  std::printf(
      "|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
  for (size_t i = 0; i < rows.size(); ++i) {
    const DecodeBenchRow& r = rows[i];
    const auto cc = find_decode_bench_cache(r.cache);
    std::printf(
        "| %s | %s | %s | %s | %d | %d | %d | %s | %.3f | %.3f | %.1f | %.1f | %.0f%% | %.0f%% | "
        "%s | %.1f | %.0f%% |\n",
        r.shape.c_str(), r.cache.c_str(), to_string(cc.key_dtype), to_string(cc.value_dtype),
        r.key_width, r.ctx, r.batch, human_bytes(static_cast<double>(r.bytes_read)).c_str(),
        r.seconds * 1e3, r.resident_seconds * 1e3, r.gb_per_s, r.probe_gb_per_s,
        100 * r.gb_per_s / r.probe_gb_per_s, 100 * r.gb_per_s / bw, ratio_text(vs_full[i]).c_str(),
        tok_s(r), 100 * r.cpu_util);
  }
}

}  // namespace thinkeys::cli
