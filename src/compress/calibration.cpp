#include "compress/calibration.h"

#include <algorithm>

#include "model/kv_cache.h"
#include "model/transformer.h"
#include "util/error.h"
#include "util/progress.h"

namespace thinkeys {

CalibrationStats calibrate(const Model& model, std::span<const int32_t> tokens,
                           const CalibrationOptions& opt) {
  const ModelConfig& c = model.config;
  c.require_standard_attention("calibration");
  if (c.thin_keys) throw Error("calibration needs an uncompressed model");
  if (opt.ctx < 2) throw Error("--calib-ctx must be at least 2");
  if (opt.share < 1 || c.n_kv_heads % opt.share != 0)
    throw Error("sharing group must divide the number of KV heads");
  const int64_t n = std::min<int64_t>(static_cast<int64_t>(tokens.size()), opt.tokens);
  if (n < 2)
    throw Error("calibration needs at least 2 tokens of text (got " + std::to_string(n) + ")");

  const int64_t H = c.n_heads, Hkv = c.n_kv_heads, G = c.group_size(), d = c.head_dim;
  const int64_t s = opt.share, nk = Hkv / s;
  CalibrationStats st;
  st.share = opt.share;
  auto zeros = [](std::vector<int64_t> shape) { return at::zeros(shape, at::kDouble); };
  for (int l = 0; l < c.n_layers; ++l) {
    st.key_pre.push_back(zeros({nk, s * d, s * d}));
    st.key_rot.push_back(zeros({nk, s * d, s * d}));
    st.query_pre.push_back(zeros({Hkv, d, d}));
    st.query_rot.push_back(zeros({Hkv, d, d}));
  }
  auto accumulate_keys = [&](at::Tensor& acc, const at::Tensor& k) {
    at::Tensor kk = k.to(at::kDouble).reshape({-1, nk, s * d}).transpose(0, 1);  // [nk, T, s*d]
    acc.add_(at::bmm(kk.transpose(1, 2), kk));
  };
  auto accumulate_queries = [&](at::Tensor& acc, const at::Tensor& q) {
    // Query heads of KV head g are g*G .. g*G+G-1: stack their rows.
    at::Tensor qq =
        q.to(at::kDouble).reshape({-1, Hkv, G, d}).permute({1, 2, 0, 3}).reshape({Hkv, -1, d});
    acc.add_(at::bmm(qq.transpose(1, 2), qq));
  };
  QKObserver observer = [&](int l, const at::Tensor& q, const at::Tensor& k, const at::Tensor& qr,
                            const at::Tensor& kr) {
    accumulate_keys(st.key_pre[l], k);
    accumulate_keys(st.key_rot[l], kr);
    accumulate_queries(st.query_pre[l], q);
    accumulate_queries(st.query_rot[l], qr);
  };
  (void)H;

  Progress progress("calibrate", n, "tok");
  if (!opt.show_progress) progress.finish();
  KVCache cache(c, opt.ctx);
  for (int64_t begin = 0; begin < n; begin += opt.ctx) {
    const int64_t len = std::min<int64_t>(opt.ctx, n - begin);
    cache.clear();
    forward(model, tokens.subspan(begin, len), cache, Logits::Last, &observer);
    st.tokens += len;
    if (opt.show_progress) progress.advance(len);
  }
  progress.finish();
  return st;
}

}  // namespace thinkeys
