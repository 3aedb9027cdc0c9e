// Per-thread scratch of decode attention (aligned buffers sized for the
// largest head group) and the RoPE step tables of latent keys.
#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <string>

#include "kernels/decode_attention.h"
#include "util/error.h"

namespace thinkeys {

void AttentionScratch::Free::operator()(void* p) const { std::free(p); }

AttentionScratch::Buffer AttentionScratch::alloc(std::size_t floats) {
  const std::size_t bytes = (std::max<std::size_t>(floats, 1) * sizeof(float) + 63) / 64 * 64;
  void* p = std::aligned_alloc(64, bytes);
  if (!p) throw Error("cannot allocate attention scratch");
  std::memset(p, 0, bytes);
  return Buffer(static_cast<float*>(p));
}

AttentionScratch::AttentionScratch(const AttentionShape& sh) {
  if (sh.max_queries < 1 || sh.max_queries > kMaxQueries)
    throw Error("decode attention supports 1 to " + std::to_string(kMaxQueries) +
                " query heads per key head, not " + std::to_string(sh.max_queries));
  if (sh.max_heads < 1) throw Error("decode attention: max_heads must be at least 1");
  heads_ = sh.max_heads;
  const std::size_t H = sh.max_heads, G = sh.max_queries, BT = sh.block_tokens, d = sh.head_dim;
  const std::size_t qw = padded(std::max(sh.max_key_width, sh.head_dim));
  const std::size_t kw = padded((sh.max_share - 1) * sh.head_dim + static_cast<int>(qw));
  q_stride_ = G * qw;
  acc_stride_ = G * padded(sh.head_dim);
  state_stride_ = G;
  rope_half_ = d / 2;
  q_ = alloc(H * q_stride_);
  // Also the channel sums of quantized keys by channel (4 queries x tokens).
  k_ = alloc(std::max(BT * std::max(kw, qw), std::size_t{4} * padded(sh.block_tokens)));
  // Also int4 key rows gathered from channels (at most 2.5 bytes per value).
  c_ = alloc(BT * padded(sh.max_key_width));
  v_ = alloc(BT * padded(sh.head_dim));
  s_ = alloc(G * padded(sh.block_tokens));
  acc_ = alloc(H * acc_stride_);
  ml_ = alloc(2 * H * G);
  angles_ = alloc(BT * d);  // each token's (cos, sin) in float, for a block
  // Integer-score queries: int8 levels, scales, and an offset per group of
  // at least 4 channels.
  const std::size_t kq = padded(sh.max_key_width);
  ql_stride_ = G * kq;
  qo_stride_ = G * (kq / 4);
  ql_ = alloc(H * ql_stride_ / sizeof(float));
  qs_ = alloc(H * G);
  qo_ = alloc(H * qo_stride_);
  pace_ = std::make_unique<std::size_t[]>(3 * H);
  // Per head: its next token's (cos, sin) in double.
  void* p = std::aligned_alloc(64, (H * 2 * rope_half_ * sizeof(double) + 63) / 64 * 64 + 64);
  if (!p) throw Error("cannot allocate attention scratch");
  rope_.reset(static_cast<double*>(p));
}

RopeSteps make_rope_steps(std::span<const float> inv_freq, int block_tokens) {
  RopeSteps r;
  r.half = static_cast<int>(inv_freq.size());
  r.block_tokens = block_tokens;
  r.inv_freq.assign(inv_freq.begin(), inv_freq.end());
  for (int t = 0; t <= block_tokens; ++t)
    for (int i = 0; i < r.half; ++i) {
      r.cos.push_back(std::cos(t * r.inv_freq[i]));
      r.sin.push_back(std::sin(t * r.inv_freq[i]));
    }
  return r;
}

}  // namespace thinkeys
