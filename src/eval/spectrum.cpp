#include "eval/spectrum.h"

#include <algorithm>
#include <cmath>
#include <functional>

#include "compress/calibration.h"
#include "util/error.h"

namespace thinkeys {
namespace {

int rank_for(const std::vector<double>& energy, double fraction) {
  for (size_t i = 0; i < energy.size(); ++i)
    // A hair of slack so an exact 90% split does not lose a rank to round-off.
    if (energy[i] >= fraction - 1e-12) return static_cast<int>(i + 1);
  return static_cast<int>(energy.size());
}

double energy_at(const std::vector<double>& energy, int r) {
  if (energy.empty() || r <= 0) return 0.0;
  return energy[std::min<size_t>(static_cast<size_t>(r), energy.size()) - 1];
}

std::vector<double> to_vector(const at::Tensor& t) {
  at::Tensor c = t.to(at::kDouble).contiguous();
  const double* p = c.data_ptr<double>();
  return {p, p + c.numel()};
}

// Squared singular values of each [rows, D] block of `w`.
std::vector<HeadSpectrum> weight_blocks(const at::Tensor& w, int64_t blocks, int head_dim) {
  std::vector<HeadSpectrum> out;
  const int64_t rows = w.size(0) / blocks;
  for (int64_t b = 0; b < blocks; ++b) {
    at::Tensor sv = at::linalg_svdvals(w.narrow(0, b * rows, rows).to(at::kDouble));
    out.push_back(summarize_spectrum(to_vector(sv.pow(2)), head_dim));
  }
  return out;
}

// Eigenvalues of each [n, n] moment of a [heads, n, n] stack: they are the
// squared singular values of the underlying data matrices.
std::vector<HeadSpectrum> moment_blocks(const at::Tensor& moments, int head_dim) {
  std::vector<HeadSpectrum> out;
  for (int64_t g = 0; g < moments.size(0); ++g) {
    at::Tensor m = moments[g];
    out.push_back(summarize_spectrum(to_vector(at::linalg_eigvalsh(0.5 * (m + m.t()))), head_dim));
  }
  return out;
}

}  // namespace

HeadSpectrum summarize_spectrum(std::vector<double> squared, int head_dim) {
  for (double& v : squared) v = std::max(v, 0.0);
  std::sort(squared.begin(), squared.end(), std::greater<>());
  HeadSpectrum h;
  double total = 0;
  for (double v : squared) total += v;
  double run = 0;
  for (double v : squared) {
    h.sigma.push_back(std::sqrt(v));
    run += v;
    h.energy.push_back(total > 0 ? run / total : 0.0);
  }
  if (total > 0) {
    h.rank90 = rank_for(h.energy, 0.90);
    h.rank95 = rank_for(h.energy, 0.95);
    h.rank99 = rank_for(h.energy, 0.99);
  }
  h.energy_quarter = energy_at(h.energy, head_dim / 4);
  h.energy_half = energy_at(h.energy, head_dim / 2);
  return h;
}

SpectrumReport measure_spectrum(const Model& model, std::span<const int32_t> tokens,
                                const SpectrumOptions& options) {
  const ModelConfig& c = model.config;
  c.require_standard_attention("spectrum");
  SpectrumReport rep;
  rep.head_dim = c.head_dim;
  rep.compressed = c.thin_keys.has_value() || c.has_thin_keys();
  if (!tokens.empty() && (c.thin_keys || !c.key_rank.empty()))
    throw Error(
        "spectrum --data needs an uncompressed model: calibration keys of a compressed model are "
        "not comparable with its queries; pass the original model");
  at::NoGradGuard no_grad;
  for (int l = 0; l < c.n_layers; ++l) {
    const LayerWeights& L = model.weights.layers[l];
    LayerSpectrum ls;
    // Post keeps full-width W_K (projected after rotation); every other mode
    // stores one block of key_width rows per cached key head.
    const int64_t key_blocks = c.rope_mode() == RopeMode::Post ? c.n_kv_heads : c.key_heads();
    ls.key_width = static_cast<int>(L.wk.size(0) / key_blocks);
    ls.query_width = static_cast<int>(L.wq.size(0) / c.n_heads);
    ls.weight_keys = weight_blocks(L.wk, key_blocks, c.head_dim);
    ls.weight_queries = weight_blocks(L.wq, c.n_heads, c.head_dim);
    rep.layers.push_back(std::move(ls));
  }
  if (tokens.empty()) return rep;

  CalibrationOptions co;
  co.tokens = options.calibration_tokens;
  co.ctx = options.ctx;
  co.show_progress = options.show_progress;
  if (c.positions == PositionKind::Learned) co.ctx = std::min(co.ctx, c.max_positions);
  CalibrationStats st = calibrate(model, tokens, co);
  rep.calibration_tokens = st.tokens;
  for (int l = 0; l < c.n_layers; ++l) {
    rep.layers[l].data_keys = moment_blocks(st.key_pre[l], c.head_dim);
    rep.layers[l].data_queries = moment_blocks(st.query_pre[l], c.head_dim);
  }
  return rep;
}

}  // namespace thinkeys
