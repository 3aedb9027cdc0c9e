#pragma once
// Post-training key compression: turns a model into one whose key cache is
// physically r-dimensional (docs/design.md sections 2-4), or, with target
// "queries", truncates W_Q instead for the keys-versus-queries comparison.
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "compress/calibration.h"
#include "model/weights.h"

namespace thinkeys {

struct RankChoice {
  int key_rank = 0;         // per key head, every layer
  double key_ratio = 0;     // r = ratio * share * head_dim
  double energy = 0;        // per layer: smallest r with discarded energy <= energy^2
  double key_budget = 0;    // global fraction of the full key bytes, allocated greedily
};

struct CompressOptions {
  std::string method = "kqsvd";     // "svd" or "kqsvd"
  std::optional<RopeMode> rope;     // required for RoPE models (post, latent, pairs)
  int share = 1;                    // KV heads per key latent
  std::string target = "keys";      // "keys" or "queries"
  RankChoice ranks;
  CalibrationOptions calibration;
};

struct CompressReport {
  std::vector<int> ranks;                  // per layer
  std::vector<double> discarded_energy;    // per layer, mean over key heads
  int64_t calibration_tokens = 0;
  double seconds = 0;
};

// `calibration_tokens` may be empty for method "svd"; "kqsvd" requires them.
Model compress_model(const Model& original, const CompressOptions& options,
                     std::span<const int32_t> calibration_tokens, CompressReport* report = nullptr);

}  // namespace thinkeys
