#include "eval/fidelity.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <limits>
#include <string>

#include "model/kv_cache.h"
#include "model/transformer.h"
#include "util/error.h"
#include "util/progress.h"

namespace thinkeys {
namespace {

void check_compatible(const ModelConfig& m, const ModelConfig& r) {
  auto mismatch = [](const std::string& what, int64_t a, int64_t b) {
    throw Error("fidelity: model and reference differ in " + what + " (" + std::to_string(a) +
                " vs " + std::to_string(b) + "); compare a compressed model with its own original");
  };
  if (m.vocab_size != r.vocab_size) mismatch("vocabulary size", m.vocab_size, r.vocab_size);
  if (m.n_layers != r.n_layers) mismatch("number of layers", m.n_layers, r.n_layers);
  if (m.n_heads != r.n_heads) mismatch("number of heads", m.n_heads, r.n_heads);
  if (m.head_dim != r.head_dim) mismatch("head dimension", m.head_dim, r.head_dim);
  // Different windows would make the masks differ, and masked scores cannot be compared.
  if (m.sliding_window.value_or(0) != r.sliding_window.value_or(0))
    mismatch("sliding window", m.sliding_window.value_or(0), r.sliding_window.value_or(0));
}

double ratio(double num, double den) {
  if (den > 0) return std::sqrt(num / den);
  return num > 0 ? std::numeric_limits<double>::infinity() : 0.0;
}

double sq(const at::Tensor& t) { return t.pow(2).sum().item<double>(); }

}  // namespace

FidelityReport measure_fidelity(const Model& model, const Model& reference,
                                std::span<const int32_t> tokens, int ctx, bool progress) {
  return measure_fidelity(model, reference, std::vector<std::span<const int32_t>>{tokens}, ctx,
                          progress);
}

FidelityReport measure_fidelity(const Model& model, const Model& reference,
                                const std::vector<std::span<const int32_t>>& documents, int ctx,
                                bool progress) {
  const ModelConfig& c = model.config;
  c.require_standard_attention("fidelity");
  reference.config.require_standard_attention("fidelity");
  check_compatible(c, reference.config);
  if (ctx < 1) throw Error("--ctx must be positive (got " + std::to_string(ctx) + ")");
  int64_t n = 0, longest = 0;
  for (const auto& d : documents) {
    n += static_cast<int64_t>(d.size());
    longest = std::max<int64_t>(longest, static_cast<int64_t>(d.size()));
  }
  if (n < 1) throw Error("fidelity needs at least 1 token of text");
  const int64_t L = c.n_layers, H = c.n_heads, d = c.head_dim;
  const int64_t window = std::min<int64_t>(ctx, longest);

  // The reference's tensors of every layer must be held until the model reaches
  // that layer. Prefilling a window in chunks of queries (exact with a KV cache)
  // keeps that below ~256 MB even for long contexts and large models.
  const int64_t per_query = L * (2 * H * window + H * d) * static_cast<int64_t>(sizeof(float));
  const int64_t chunk = std::clamp<int64_t>((int64_t{256} << 20) / per_query, 1, window);

  // Squared-norm sums in double: [layer][scores, probs, output].
  std::vector<std::array<double, 3>> num(L, {0, 0, 0}), den(L, {0, 0, 0});
  std::vector<std::array<at::Tensor, 3>> held(L);
  AttentionObserver keep = [&](int l, const at::Tensor& s, const at::Tensor& p,
                               const at::Tensor& o) {
    held[l] = {s, p, o};
  };
  AttentionObserver compare = [&](int l, const at::Tensor& s, const at::Tensor& p,
                                  const at::Tensor& o) {
    const auto& [rs, rp, ro] = held[l];
    if (!rs.defined() || !rs.sizes().equals(s.sizes()) || !ro.sizes().equals(o.sizes()))
      throw Error("fidelity: attention shapes differ between model and reference at layer " +
                  std::to_string(l));
    // Masked pairs are -inf in both; where() drops them. Each query's row is
    // centred over its visible keys because softmax ignores a per-query shift:
    // dropping key biases (exact, docs/design.md section 2) shifts rows by q.b_k and
    // must not count as error.
    at::Tensor valid = at::isfinite(rs).logical_and(at::isfinite(s));
    at::Tensor zero = at::zeros({}, at::kDouble);
    auto centred = [&](const at::Tensor& x) {
      at::Tensor v = at::where(valid, x.to(at::kDouble), zero);
      at::Tensor count = valid.sum(-1, /*keepdim=*/true).clamp_min(1).to(at::kDouble);
      return at::where(valid, v - v.sum(-1, /*keepdim=*/true) / count, zero);
    };
    at::Tensor cs = centred(s), crs = centred(rs);
    num[l][0] += sq(cs - crs);
    den[l][0] += sq(crs);
    at::Tensor rp64 = rp.to(at::kDouble), ro64 = ro.to(at::kDouble);
    num[l][1] += sq(p.to(at::kDouble) - rp64);
    den[l][1] += sq(rp64);
    num[l][2] += sq(o.to(at::kDouble) - ro64);
    den[l][2] += sq(ro64);
    held[l] = {};
  };

  FidelityReport rep;
  rep.ctx = ctx;
  KVCache cache(c, static_cast<int>(window)), ref_cache(reference.config, static_cast<int>(window));
  Progress bar("fidelity", n, "tok");
  if (!progress) bar.finish();
  for (const auto& tokens : documents) {
    const int64_t doc_n = static_cast<int64_t>(tokens.size());
    for (int64_t begin = 0; begin < doc_n; begin += window) {
      const int64_t end = std::min(begin + window, doc_n);
      cache.clear();
      ref_cache.clear();
      for (int64_t b = begin; b < end; b += chunk) {
        auto part = tokens.subspan(b, std::min(chunk, end - b));
        forward(reference, part, ref_cache, Logits::Last, nullptr, &keep);
        forward(model, part, cache, Logits::Last, nullptr, &compare);
      }
      rep.tokens += end - begin;
      ++rep.windows;
      if (progress) bar.advance(end - begin);
    }
  }
  bar.finish();

  std::array<double, 3> tn{0, 0, 0}, td{0, 0, 0};
  for (int64_t l = 0; l < L; ++l) {
    rep.layers.push_back(
        {ratio(num[l][0], den[l][0]), ratio(num[l][1], den[l][1]), ratio(num[l][2], den[l][2])});
    for (int i = 0; i < 3; ++i) {
      tn[i] += num[l][i];
      td[i] += den[l][i];
    }
  }
  rep.overall = {ratio(tn[0], td[0]), ratio(tn[1], td[1]), ratio(tn[2], td[2])};
  return rep;
}

}  // namespace thinkeys
