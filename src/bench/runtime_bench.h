#pragma once
// Prefill and decode throughput of a whole model on the path generate, chat
// and serve use (paged f16 cache, fused decode step; the dense cache for MLA
// and LRKV, which the paged cache does not hold).
#include <cstdint>
#include <string>

#include "model/weights.h"

namespace thinkeys {

struct RuntimeBenchResult {
  std::string name;
  std::string path;  // which decode path ran
  int64_t parameters = 0;
  int64_t weight_bytes = 0;   // bytes read per decode step for weights
  int64_t kv_bytes_read = 0;  // cache bytes read by the average measured decode step
  int ctx = 0;
  int decode_tokens = 0;
  double prefill_tokens_per_s = 0;
  double decode_tokens_per_s = 0;
  double decode_ms = 0;
  double weight_bound_ms = 0;  // weight_bytes / measured bandwidth
};

// Prefills ctx tokens (best of `repeats`), then decodes `decode_tokens` tokens one
// at a time ending at position ctx.
RuntimeBenchResult bench_runtime(const Model& model, const std::string& name, int ctx,
                                 int decode_tokens, double bandwidth_gb_s, int repeats = 3);

}  // namespace thinkeys
