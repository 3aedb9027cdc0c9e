#pragma once
// Where training batches come from. Sources are indexed by sample number,
// not by call order, so a step's data depends only on the step (exact resume,
// and data-parallel ranks taking disjoint slices of the same stream).
// Torch-free: code that only passes sources around needs no tensor type.
#include <cstdint>
#include <functional>

namespace thinkeys {

struct Batch;  // train/batch.h

// Returns `count` sequences: samples first, first + 1, ..., first + count - 1
// of an endless, deterministic stream.
using SampleSource = std::function<Batch(int64_t first, int count)>;

}  // namespace thinkeys
