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

// Sees every layer's attention: scaled pre-softmax scores including the mask
// [H, T, S] (masked entries are -inf), softmax weights [H, T, S] and the output
// before W_O [T, H*d]. Fidelity analysis compares these across models.
using AttentionObserver = std::function<void(int layer, const at::Tensor& scores,
                                             const at::Tensor& probs, const at::Tensor& output)>;

// Runs `tokens` at positions cache.length() .. + n - 1, appends their keys and
// values, and returns logits [n, V] (or [1, V] for Logits::Last).
at::Tensor forward(const Model& model, std::span<const int32_t> tokens, KVCache& cache,
                   Logits which = Logits::All, const QKObserver* observer = nullptr,
                   const AttentionObserver* attention_observer = nullptr);

}  // namespace thinkeys
