#pragma once
// A training batch: token ids and next-token targets. Where batches come
// from (SampleSource) is in train/sample_source.h.
#include <ATen/ATen.h>

#include "train/sample_source.h"

namespace thinkeys {

struct Batch {
  at::Tensor inputs;   // [B, T] int64 token ids
  at::Tensor targets;  // [B, T] int64 next tokens; kIgnoreIndex (-1) = not scored
};

}  // namespace thinkeys
