#pragma once
// Rotary-embedding angle tables shared by the dense, batched and training
// forward paths.
#include <ATen/ATen.h>

#include <tuple>
#include <utility>

namespace thinkeys {

// cos and sin of positions x inv_freq, shaped [N, 1, half] so they broadcast
// over the heads of q/k laid out [..., N, heads, width].
std::pair<at::Tensor, at::Tensor> rope_cos_sin(const at::Tensor& positions,
                                               const at::Tensor& inv_freq);

}  // namespace thinkeys
