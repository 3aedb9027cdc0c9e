#pragma once
// BatchDecoder's logits as tensors, for code that compares or reduces them
// with libtorch (evaluation, tests); the decoder itself hands out floats.
#include <ATen/ATen.h>

#include <cstdint>
#include <span>

#include "runtime/batch_decoder.h"

namespace thinkeys {

// A copy, [rows, V].
inline at::Tensor logits_tensor(const LogitRows& logits) {
  return at::from_blob(const_cast<float*>(logits.values.data()), {logits.rows(), logits.vocab},
                       at::kFloat)
      .clone();
}

// A copy of one row of V logits, [1, V].
inline at::Tensor logits_tensor(std::span<const float> row) {
  return logits_tensor(LogitRows{row, static_cast<int>(row.size())});
}

}  // namespace thinkeys
