#pragma once
// Random-weight models of any shape, for benchmarks and tests.
#include <cstdint>

#include "model/weights.h"

namespace thinkeys {

Model random_model(const ModelConfig& config, uint64_t seed, double stddev = 0.02);

// GPT-2 small's shape (12 layers, width 768, 12 heads, vocab 50257, 1024 positions).
ModelConfig gpt2_small_config();

}  // namespace thinkeys
