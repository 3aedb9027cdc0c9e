#pragma once
// Random-weight models of any shape, for benchmarks and tests.
#include <cstdint>

#include "model/weights.h"

namespace thinkeys {

Model random_model(const ModelConfig& config, uint64_t seed, double stddev = 0.02);

// The sizes that tell small random models apart; the rest is the family's.
struct ModelShape {
  int vocab = 0, dim = 0, layers = 0, heads = 0, kv_heads = 0, head_dim = 0, hidden = 0;
  int max_positions = 0;
};

// Llama style (RMSNorm, SwiGLU, RoPE, no biases) of that shape.
ModelConfig llama_config(const ModelShape& s);
// GPT-2 style (LayerNorm, GELU, learned positions, biases, tied head) of that
// shape; BOS/EOS stay GPT-2's 50256, as in every GPT-2 vocabulary.
ModelConfig gpt2_config(const ModelShape& s);
// GPT-2 small's shape (12 layers, width 768, 12 heads, vocab 50257, 1024 positions).
ModelConfig gpt2_small_config();

}  // namespace thinkeys
