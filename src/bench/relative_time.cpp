#include "bench/relative_time.h"

#include <algorithm>
#include <map>
#include <string>
#include <tuple>

namespace thinkeys {

std::vector<double> decode_time_vs_full_f16(const std::vector<DecodeBenchRow>& rows) {
  std::map<std::tuple<std::string, int, int>, double> full;
  for (const auto& r : rows)
    if (r.cache == "full-f16") full[{r.shape, r.ctx, r.batch}] = r.seconds;
  std::vector<double> ratios;
  ratios.reserve(rows.size());
  for (const auto& r : rows) {
    auto it = full.find({r.shape, r.ctx, r.batch});
    ratios.push_back(it == full.end() ? 0.0 : r.seconds / it->second);
  }
  return ratios;
}

double attention_only_tokens_per_s(const DecodeBenchRow& row, int layers) {
  return row.batch / (layers * row.seconds);
}

double best_read_bandwidth(double before_gb_s, double after_gb_s,
                           const std::vector<DecodeBenchRow>& rows) {
  double bw = std::max(before_gb_s, after_gb_s);
  for (const auto& r : rows) bw = std::max(bw, r.probe_gb_per_s);
  return bw;
}

std::vector<VsFullF16> model_time_vs_full_f16(const std::vector<ModelDecodeRow>& rows) {
  std::map<std::tuple<std::string, std::string, int, int>, const ModelDecodeRow*> full;
  for (const auto& r : rows)
    if (r.cache == "full-f16" && !r.skipped) full[{r.shape, r.weights, r.ctx, r.batch}] = &r;
  std::vector<VsFullF16> ratios;
  ratios.reserve(rows.size());
  for (const auto& r : rows) {
    auto it = full.find({r.shape, r.weights, r.ctx, r.batch});
    if (it == full.end()) {
      ratios.push_back({});
      continue;
    }
    ratios.push_back({r.median_s / it->second->median_s, r.best_s / it->second->best_s});
  }
  return ratios;
}

double weight_bound_seconds(const ModelDecodeRow& row, double bytes_per_s) {
  return row.weight_bytes / bytes_per_s;
}

double weight_and_kv_bound_seconds(const ModelDecodeRow& row, double bytes_per_s) {
  return static_cast<double>(row.weight_bytes + row.kv_bytes_read) / bytes_per_s;
}

}  // namespace thinkeys
