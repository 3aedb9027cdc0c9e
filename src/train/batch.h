#pragma once
// A training batch and where batches come from. Sources are indexed by sample
// number, not by call order, so a step's data depends only on the step (exact
// resume, and data-parallel ranks taking disjoint slices of the same stream).
#include <ATen/ATen.h>

#include <cstdint>
#include <functional>

namespace thinkeys {

struct Batch {
  at::Tensor inputs;   // [B, T] int64 token ids
  at::Tensor targets;  // [B, T] int64 next tokens; kIgnoreIndex (-1) = not scored
};

// Returns `count` sequences: samples first, first + 1, ..., first + count - 1
// of an endless, deterministic stream.
using SampleSource = std::function<Batch(int64_t first, int count)>;

}  // namespace thinkeys
