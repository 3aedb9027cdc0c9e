#pragma once
// The forward pass: one function for prefill (many tokens) and decode (one
// token); both append to the cache, so they produce identical logits.
#include <ATen/ATen.h>

#include <cstdint>
#include <functional>
#include <span>

#include "model/kv_cache.h"
#include "model/weights.h"

namespace thinkeys {

enum class Logits { All, Last };

// Sees every layer's queries and keys before and after rotation ([T, H, w],
// [T, key heads, w]); calibration uses it on uncompressed models.
using QKObserver = std::function<void(int layer, const at::Tensor& q, const at::Tensor& k,
                                      const at::Tensor& q_rotated, const at::Tensor& k_rotated)>;

// Runs `tokens` at positions cache.length() .. + n - 1, appends their keys and
// values, and returns logits [n, V] (or [1, V] for Logits::Last).
at::Tensor forward(const Model& model, std::span<const int32_t> tokens, KVCache& cache,
                   Logits which = Logits::All, const QKObserver* observer = nullptr);

}  // namespace thinkeys
