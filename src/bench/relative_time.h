#pragma once
// How sweep rows compare: time relative to the full-width f16 cache measured
// in the same run and cell, and the bandwidth bounds of a decode step. Ratios
// inside one run are what a shared, noisy machine can still support.
#include <vector>

#include "bench/decode_bench.h"
#include "bench/model_decode_bench.h"

namespace thinkeys {

// Per row: its time over the full-f16 row of the same (shape, ctx, batch),
// 0 when the sweep has no such row.
std::vector<double> decode_time_vs_full_f16(const std::vector<DecodeBenchRow>& rows);

// Attention-only tokens/s if every one of `layers` layers took this row's time.
double attention_only_tokens_per_s(const DecodeBenchRow& row, int layers);

// The best read rate seen anywhere in a kernel sweep (GB/s): the probes
// before and after and the one next to every cell.
double best_read_bandwidth(double before_gb_s, double after_gb_s,
                           const std::vector<DecodeBenchRow>& rows);

struct VsFullF16 {
  double median = 0, best = 0;  // 0: no full-f16 row to compare with
};
// Per row: median and best time over those of the full-f16 row with the same
// (shape, weights, ctx, batch); skipped rows never serve as the reference.
std::vector<VsFullF16> model_time_vs_full_f16(const std::vector<ModelDecodeRow>& rows);

// Seconds a step needs at `bytes_per_s` to read the weights, and the weights
// plus the cached keys and values.
double weight_bound_seconds(const ModelDecodeRow& row, double bytes_per_s);
double weight_and_kv_bound_seconds(const ModelDecodeRow& row, double bytes_per_s);

}  // namespace thinkeys
