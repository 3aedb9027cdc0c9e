#include "model/layer_ops.h"

namespace thinkeys {

at::Tensor project(const at::Tensor& x, const at::Tensor& w, const at::Tensor& b) {
  if (x.size(0) == 1) {
    at::Tensor row = x.select(0, 0);
    return (b.defined() ? at::addmv(b, w, row) : at::mv(w, row)).unsqueeze(0);
  }
  return b.defined() ? at::linear(x, w, b) : at::linear(x, w);
}

at::Tensor normalize(const ModelConfig& c, const at::Tensor& x, const at::Tensor& w,
                     const at::Tensor& b) {
  if (c.norm == NormKind::LayerNorm) return at::layer_norm(x, {x.size(-1)}, w, b, c.norm_eps);
  return x * at::rsqrt(x.pow(2).mean(-1, /*keepdim=*/true) + c.norm_eps) * w;
}

at::Tensor rotate(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin) {
  const int64_t half = x.size(-1) / 2;
  at::Tensor x1 = x.narrow(-1, 0, half), x2 = x.narrow(-1, half, half);
  at::Tensor c = cos.narrow(-1, 0, half), s = sin.narrow(-1, 0, half);
  return at::cat({x1 * c - x2 * s, x2 * c + x1 * s}, -1);
}

at::Tensor feed_forward(const ModelConfig& c, const LayerWeights& L, const at::Tensor& h) {
  at::Tensor m;
  if (c.mlp == MlpKind::SwiGLU) {
    at::Tensor gu = project(h, L.w_gate_up, L.b_gate_up);
    const int64_t f = c.hidden_dim;
    m = at::silu(gu.narrow(1, 0, f)) * gu.narrow(1, f, f);
  } else {
    m = at::gelu(project(h, L.w_up, L.b_up), "tanh");
  }
  return project(m, L.w_down, L.b_down);
}

}  // namespace thinkeys
