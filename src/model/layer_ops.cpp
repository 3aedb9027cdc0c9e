#include "model/layer_ops.h"

#include <algorithm>

#include "kernels/small_gemm.h"
#include "util/threads.h"
#include "util/work_pool.h"

namespace thinkeys {
namespace {

// Output features per work item: large enough that a thread streams a few
// hundred KiB of weights per item, small enough to split 768-wide layers.
constexpr int kGemmChunk = 64;

bool small_gemm_applies(const at::Tensor& x, const at::Tensor& w, const at::Tensor& b) {
  auto plain = [](const at::Tensor& t) {
    return t.device().is_cpu() && t.scalar_type() == at::kFloat && !t.requires_grad();
  };
  return x.dim() == 2 && x.size(0) >= 1 && x.size(0) <= kSmallGemmMaxRows && w.dim() == 2 &&
         x.size(1) == w.size(1) && plain(x) && plain(w) && w.is_contiguous() &&
         (!b.defined() || (b.dim() == 1 && b.size(0) == w.size(0) && plain(b)));
}

at::Tensor small_project(const at::Tensor& x_in, const at::Tensor& w, const at::Tensor& b_in) {
  const at::Tensor x = x_in.contiguous(), b = b_in.defined() ? b_in.contiguous() : b_in;
  const int rows = static_cast<int>(x.size(0)), out = static_cast<int>(w.size(0));
  const int in = static_cast<int>(w.size(1));
  at::Tensor y = at::empty({rows, out}, x.options());
  const float *wp = w.data_ptr<float>(), *xp = x.data_ptr<float>();
  const float* bp = b.defined() ? b.data_ptr<float>() : nullptr;
  float* yp = y.data_ptr<float>();
  auto run = [&](int o0, int o1) { small_gemm(wp, in, in, xp, in, rows, bp, yp, out, o0, o1); };
  // libtorch's own pool is pinned to one thread (util/threads.h), so without
  // the shared pool this would run on one core.
  const int chunks = (out + kGemmChunk - 1) / kGemmChunk;
  compute_pool()->run(
      chunks, [&](int c, int) { run(c * kGemmChunk, std::min(out, (c + 1) * kGemmChunk)); });
  return y;
}

}  // namespace

int project_threads() { return compute_pool()->threads(); }

at::Tensor project(const at::Tensor& x, const at::Tensor& w, const at::Tensor& b) {
  if (small_gemm_applies(x, w, b)) return small_project(x, w, b);
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
