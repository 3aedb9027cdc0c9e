#include "cli/bench_model_decode.h"

#include <algorithm>
#include <cstdio>
#include <memory>
#include <nlohmann/json.hpp>
#include <thread>

#include "bench/bandwidth_probe.h"
#include "bench/load_average.h"
#include "bench/relative_time.h"
#include "bench/sweep_selection.h"
#include "cli/common.h"
#include "util/error.h"
#include "util/memory_info.h"

namespace thinkeys::cli {
void run_model_decode_bench(const ModelDecodeCliOptions& opt) {
  ModelDecodeBenchOptions o = opt.bench;
  if (o.threads <= 0)
    o.threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  o.progress = !opt.json;
  const std::vector<ModelDecodeShape> shapes = select_model_decode_shapes(opt.shapes);
  const std::vector<ModelDecodeCache> caches = select_model_decode_caches(opt.caches);
  // The machine may be shared: the load and the bandwidth before and after
  // say how far to trust absolute figures; ratios within a run hold better.
  const std::string load0 = load_average();
  const BandwidthResult bw0 = probe_read_bandwidth(o.threads);
  std::vector<ModelDecodeRow> rows;
  std::vector<std::string> notes;
  for (const auto& sh : shapes) {
    // One model per key width, shared by the layouts that use it.
    std::vector<std::shared_ptr<const Model>> models;
    std::vector<ModelDecodeCase> cases;
    for (int divisor : {1, 4}) {
      bool used = false;
      for (const auto& cc : caches)
        used |= cc.key_divisor == divisor && model_decode_cache_applies(sh, cc);
      if (!used) continue;
      for (const auto& wname : opt.weights) {
        models.push_back(model_decode_model(sh, divisor, wname));
        for (const auto& cc : caches)
          if (cc.key_divisor == divisor && model_decode_cache_applies(sh, cc))
            cases.push_back({models.back().get(), cc, wname});
      }
    }
    if (cases.empty())
      throw Error("no cache layout asked for applies to the " + sh.name +
                  " shape (it caches its own rows at full width: full-f16)");
    // Weight formats of one layout share its cache (bench_model_decode), so
    // memory is counted per layout; layouts that do not fit together run in
    // groups that do, in order, each group stepped round-robin.
    std::vector<std::string> layouts;
    std::vector<std::size_t> layout_bytes;
    for (const auto& c : cases)
      if (std::find(layouts.begin(), layouts.end(), c.cache.name) == layouts.end()) {
        layouts.push_back(c.cache.name);
        layout_bytes.push_back(model_decode_cache_bytes(c, o));
      }
    const std::size_t avail = mem_available_bytes();
    const double limit = avail == 0 ? 1e30 : o.memory_fraction * static_cast<double>(avail);
    std::vector<std::vector<std::string>> groups;
    double used = 0;
    for (std::size_t k = 0; k < layouts.size(); ++k) {
      if (groups.empty() || used + layout_bytes[k] > limit) {
        groups.emplace_back();
        used = 0;
      }
      groups.back().push_back(layouts[k]);
      used += layout_bytes[k];
    }
    if (groups.size() > 1) {
      std::string g;
      for (const auto& grp : groups) {
        g += g.empty() ? "{" : ", {";
        for (std::size_t k = 0; k < grp.size(); ++k) g += (k ? " " : "") + grp[k];
        g += "}";
      }
      notes.push_back(sh.name + ": the layouts' caches together exceed " +
                      std::to_string(static_cast<int>(100 * o.memory_fraction)) + "% of " +
                      human_bytes(static_cast<double>(avail)) +
                      " available, so these groups ran one after another: " + g);
    }
    for (const auto& grp : groups) {
      std::vector<ModelDecodeCase> part;
      for (const auto& c : cases)
        if (std::find(grp.begin(), grp.end(), c.cache.name) != grp.end()) part.push_back(c);
      auto r = bench_model_decode(sh.name, part, o);
      rows.insert(rows.end(), r.begin(), r.end());
    }
  }
  const BandwidthResult bw1 = probe_read_bandwidth(o.threads);
  const std::string load1 = load_average();
  const double bw = std::max(bw0.gb_per_s, bw1.gb_per_s) * 1e9;

  const std::vector<VsFullF16> vs_full = model_time_vs_full_f16(rows);
  auto weight_bound = [&](const ModelDecodeRow& r) { return weight_bound_seconds(r, bw); };
  auto full_bound = [&](const ModelDecodeRow& r) { return weight_and_kv_bound_seconds(r, bw); };

  if (opt.json) {
    nlohmann::json j = {{"threads", o.threads},
                        {"block_tokens", o.block_tokens},
                        {"load_average_before", load0},
                        {"load_average_after", load1},
                        {"read_bandwidth_gb_s_before", bw0.gb_per_s},
                        {"read_bandwidth_gb_s_after", bw1.gb_per_s},
                        {"notes", notes},
                        {"rows", nlohmann::json::array()}};
    for (size_t i = 0; i < rows.size(); ++i) {
      const ModelDecodeRow& r = rows[i];
      nlohmann::json row = {{"shape", r.shape},
                            {"cache", r.cache},
                            {"weights", r.weights},
                            {"key_width", r.key_width},
                            {"ctx", r.ctx},
                            {"batch", r.batch},
                            {"weight_bytes", r.weight_bytes},
                            {"kv_bytes_read", r.kv_bytes_read},
                            {"interleaved", r.interleaved},
                            {"skipped", r.skipped}};
      if (r.skipped) {
        row["note"] = r.note;
      } else {
        row.update({{"steps", r.steps},
                    {"best_ms", 1e3 * r.best_s},
                    {"median_ms", 1e3 * r.median_s},
                    {"lead_in_median_ms", 1e3 * r.lead_in_median_s},
                    {"tokens_per_s", r.batch / r.median_s},
                    {"time_vs_full_f16_median", vs_full[i].median},
                    {"time_vs_full_f16_best", vs_full[i].best},
                    {"weight_bound_ms", 1e3 * weight_bound(r)},
                    {"weight_and_kv_bound_ms", 1e3 * full_bound(r)},
                    {"fraction_of_bandwidth", full_bound(r) / r.median_s},
                    {"round_probe_gb_s", r.round_probe_gb_s},
                    {"fraction_of_round_probe", r.fraction_of_round_probe},
                    {"cpu_util", r.cpu_util},
                    {"cpu_ms_per_step", 1e3 * r.cpu_s_per_step}});
      }
      j["rows"].push_back(row);
    }
    std::printf("%s\n", j.dump(2).c_str());
    return;
  }
  std::printf(
      "whole-model decode over the paged cache: 12 layers, width 768, 12 query heads of 64, "
      "SwiGLU 2048, vocab 32000; gqa = 4 KV heads, mha = 12; values f16\n");
  std::printf("%d attention threads, %d tokens per block; load average %s before, %s after\n",
              o.threads, o.block_tokens, load0.c_str(), load1.c_str());
  std::printf(
      "read bandwidth (streaming sum): %.1f GB/s before, %.1f GB/s after; bounds use the higher\n",
      bw0.gb_per_s, bw1.gb_per_s);
  std::printf(
      "one warm-up step, then %d timed steps (%d at ctx >= 16K); tok/s = batch / median; vs full = "
      "time / full-f16's at the same model, ctx, batch; weight bound = weights / bandwidth; "
      "W+KV bound = (weights + KV read) / bandwidth\n",
      o.steps, o.long_steps);
  std::printf(
      "layouts of one model are stepped round-robin (two steps each in turn, the second timed, "
      "as a decode loop runs them) so load changes hit them alike%s\n",
      notes.empty() ? "" : ", except:");
  for (const auto& n : notes) std::printf("  %s\n", n.c_str());
  std::printf("\n");
  std::printf(
      "| model | cache | weights | r | ctx | batch | weights/step | KV/step | best ms | median ms "
      "| "
      "tok/s | vs full (median) | vs full (best) | weight bound ms | W+KV bound ms | "
      "bandwidth used (W+KV bound / median) | cpu util |\n");
  std::printf(
      "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
  for (size_t i = 0; i < rows.size(); ++i) {
    const ModelDecodeRow& r = rows[i];
    if (r.skipped) {
      std::printf("| %s | %s | %s | %d | %d | %d | %s | %s | skipped: %s |||||||||\n",
                  r.shape.c_str(), r.cache.c_str(), r.weights.c_str(), r.key_width, r.ctx, r.batch,
                  human_bytes(static_cast<double>(r.weight_bytes)).c_str(),
                  human_bytes(static_cast<double>(r.kv_bytes_read)).c_str(), r.note.c_str());
      continue;
    }
    std::printf(
        "| %s | %s | %s | %d | %d | %d | %s | %s | %.1f | %.1f | %.1f | %.2fx | %.2fx | %.1f | "
        "%.1f | %.0f%% | %.0f%% |\n",
        r.shape.c_str(), r.cache.c_str(), r.weights.c_str(), r.key_width, r.ctx, r.batch,
        human_bytes(static_cast<double>(r.weight_bytes)).c_str(),
        human_bytes(static_cast<double>(r.kv_bytes_read)).c_str(), 1e3 * r.best_s, 1e3 * r.median_s,
        r.batch / r.median_s, vs_full[i].median, vs_full[i].best, 1e3 * weight_bound(r),
        1e3 * full_bound(r), 100 * full_bound(r) / r.median_s, 100 * r.cpu_util);
  }
}

}  // namespace thinkeys::cli
