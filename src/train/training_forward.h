#pragma once
// The cache-free, batched, autograd-friendly forward pass used for training.
// It computes exactly what forward() (model/transformer.h) computes for each
// sequence started from an empty cache, for every architecture and RoPE mode
// the runtime supports, but over a batch, without a KV cache and without
// in-place ops on tensors autograd needs. It reads only the canonical weights
// (wq, wk, wv, w_gate, w_up, ...), so it works both on a runtime model and on
// one passed through prepare_for_training().
#include <ATen/ATen.h>

#include "model/weights.h"

namespace thinkeys {

// Targets equal to this are not scored (lm_loss) and not distilled (kd_loss).
constexpr int64_t kIgnoreIndex = -1;

// tokens: [B, T] integer ids (T <= max_positions for learned positions).
// Returns logits [B, T, V] (float32).
at::Tensor training_forward(const Model& model, const at::Tensor& tokens);

// Mean next-token cross-entropy over targets != kIgnoreIndex.
// logits [B, T, V], targets [B, T] (int64).
at::Tensor lm_loss(const at::Tensor& logits, const at::Tensor& targets);

// Distillation: mean over scored positions (targets != kIgnoreIndex) of
// KL(teacher || student) between next-token distributions, in nats.
// The teacher's logits carry no gradient.
at::Tensor kd_loss(const at::Tensor& student_logits, const at::Tensor& teacher_logits,
                   const at::Tensor& targets);

}  // namespace thinkeys
