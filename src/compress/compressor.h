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
  int key_rank = 0;       // per key head, every layer
  double key_ratio = 0;   // r = ratio * share * head_dim
  double energy = 0;      // per layer: smallest r with discarded energy <= energy^2
  double key_budget = 0;  // global fraction of the full key bytes, allocated greedily
};

enum class CompressMethod {
  Svd,     // weight SVD, data-free (design.md section 2)
  KqSvd,   // calibrated on text (design.md section 3)
  KeyPca,  // calibrated, keys only: top principal directions of the calibration keys
           // (the data-driven key-only baseline KQ-SVD is measured against)
};
enum class CompressTarget {
  Keys,     // thin the key cache
  Queries,  // truncate W_Q instead, cache unchanged (the keys-versus-queries comparison)
};
// "svd"/"kqsvd"/"keypca" and "keys"/"queries"; anything else throws Error.
CompressMethod parse_compress_method(const std::string& s);
CompressTarget parse_compress_target(const std::string& s);
const char* to_string(CompressMethod m);
const char* to_string(CompressTarget t);

struct CompressOptions {
  CompressMethod method = CompressMethod::KqSvd;
  std::optional<RopeMode> rope;  // required for RoPE models (post, latent, pairs)
  int share = 1;                 // KV heads per key latent
  CompressTarget target = CompressTarget::Keys;
  RankChoice ranks;
  CalibrationOptions calibration;
};

struct CompressReport {
  std::vector<int> ranks;                // per layer
  std::vector<double> discarded_energy;  // per layer, mean over key heads
  int64_t calibration_tokens = 0;
  double seconds = 0;
};

// `calibration_tokens` may be empty for CompressMethod::Svd; KqSvd and KeyPca require them.
Model compress_model(const Model& original, const CompressOptions& options,
                     std::span<const int32_t> calibration_tokens, CompressReport* report = nullptr);

}  // namespace thinkeys
