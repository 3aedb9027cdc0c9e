#pragma once
// Second moments of keys and queries, streamed over calibration text: memory
// O((share*d)^2) per key head, independent of the number of tokens.
#include <ATen/ATen.h>

#include <cstdint>
#include <span>
#include <vector>

#include "model/weights.h"

namespace thinkeys {

struct CalibrationOptions {
  int64_t tokens = 32768;  // at most this many calibration tokens
  int ctx = 512;           // window length (use the deployment context for RoPE post)
  int share = 1;           // KV heads per key latent: moments over their concatenated keys
  bool show_progress = true;
};

struct CalibrationStats {
  int64_t tokens = 0;
  int share = 1;
  // Per layer, double precision. Keys: [key heads, share*d, share*d] moment of
  // the concatenated keys of the heads sharing a latent. Queries: [Hkv, d, d],
  // for each KV head the *sum* over its query heads of q q^T.
  std::vector<at::Tensor> key_pre, key_rot, query_pre, query_rot;
};

CalibrationStats calibrate(const Model& model, std::span<const int32_t> tokens,
                           const CalibrationOptions& options);

}  // namespace thinkeys
