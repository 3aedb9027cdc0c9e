#include "model/rope.h"

namespace thinkeys {

std::pair<at::Tensor, at::Tensor> rope_cos_sin(const at::Tensor& positions,
                                               const at::Tensor& inv_freq) {
  at::Tensor ang = at::outer(positions, inv_freq).unsqueeze(1);
  return {at::cos(ang), at::sin(ang)};
}

std::pair<at::Tensor, at::Tensor> layer_cos_sin(const at::Tensor& layer_inv_freq,
                                                const at::Tensor& positions, const at::Tensor& cos,
                                                const at::Tensor& sin) {
  if (!layer_inv_freq.defined()) return {cos, sin};
  return rope_cos_sin(positions, layer_inv_freq);
}

}  // namespace thinkeys
