#pragma once
// Causal attention of many query rows at once (prefill) over f32 queries,
// keys and values, on the compute pool. Computing the whole masked T x S
// square with batched GEMMs spends half its multiplies above the diagonal,
// allocates the score and probability squares per layer and runs softmax on
// one thread; here each task is one query head and a block of query rows, it
// visits only the key blocks its rows can see, and keeps scores in a
// per-thread tile with an online softmax (running max and sum), as the decode
// kernel does.
#include <cstddef>

namespace thinkeys {

class WorkPool;

struct PrefillAttentionShape {
  int tokens = 0;       // query rows, at positions start .. start + tokens - 1
  int start = 0;        // keys cover positions [0, start + tokens)
  int heads = 0;        // query heads
  int key_heads = 0;    // query head h reads key head h / (heads / key_heads)
  int value_heads = 0;  // and value head h / (heads / value_heads)
  int key_width = 0;    // width of queries and keys
  int head_dim = 0;     // width of values and outputs
  int window = 0;       // > 0: the query at p sees keys s with p - window < s <= p
  float scale = 1.0f;   // score = scale * q . k
};

// Row-major operands with strides in floats:
//   q(t, h, i)     = q[t * ldq + h * key_width + i]
//   k(kh, s, i)    = k[kh * k_head_stride + s * k_row_stride + i]
//   v(vh, s, j)    = v[vh * v_head_stride + s * v_row_stride + j]
//   out(t, h, j)   = out[t * ldo + h * head_dim + j]
// out(t, h) = sum_s softmax_s(scale * q(t, h) . k(kh, s)) v(vh, s) over the
// keys s that query t sees. Every query sees at least its own key.
struct PrefillAttentionArgs {
  const float* q = nullptr;
  std::size_t ldq = 0;
  const float* k = nullptr;
  std::size_t k_head_stride = 0, k_row_stride = 0;
  const float* v = nullptr;
  std::size_t v_head_stride = 0, v_row_stride = 0;
  float* out = nullptr;
  std::size_t ldo = 0;
};

void prefill_attention(const PrefillAttentionShape& shape, const PrefillAttentionArgs& args,
                       WorkPool& pool);

}  // namespace thinkeys
