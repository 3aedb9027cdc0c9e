#include "model/rope.h"

namespace thinkeys {

std::pair<at::Tensor, at::Tensor> rope_cos_sin(const at::Tensor& positions,
                                               const at::Tensor& inv_freq) {
  at::Tensor ang = at::outer(positions, inv_freq).unsqueeze(1);
  return {at::cos(ang), at::sin(ang)};
}

}  // namespace thinkeys
