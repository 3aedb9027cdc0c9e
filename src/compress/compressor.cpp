#include "compress/compressor.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <queue>

#include "compress/kq_svd.h"
#include "util/enum_names.h"
#include "util/error.h"

namespace thinkeys {

namespace {
constexpr EnumName<CompressMethod> kMethods[] = {{CompressMethod::Svd, "svd"},
                                                 {CompressMethod::KqSvd, "kqsvd"},
                                                 {CompressMethod::KeyPca, "keypca"}};
constexpr EnumName<CompressTarget> kTargets[] = {{CompressTarget::Keys, "keys"},
                                                 {CompressTarget::Queries, "queries"}};
}  // namespace

CompressMethod parse_compress_method(const std::string& s) {
  return parse_enum<CompressMethod>(kMethods, s, "method");
}

CompressTarget parse_compress_target(const std::string& s) {
  return parse_enum<CompressTarget>(kTargets, s, "target");
}

const char* to_string(CompressMethod m) { return enum_name<CompressMethod>(kMethods, m); }
const char* to_string(CompressTarget t) { return enum_name<CompressTarget>(kTargets, t); }

namespace {

at::Tensor f32(const at::Tensor& t) { return t.to(at::kFloat).contiguous(); }

struct Plan {
  int64_t nk, s, d, G;
  bool rope;
  RopeMode mode;
};

// Per layer and key head: everything the rank choice and the maps need.
struct HeadSpectrum {
  at::Tensor singular_values;  // objective's singular values, descending
  std::optional<KQFactorization> kq;
  at::Tensor key_directions;  // keypca: eigenvectors of the key moment, by falling eigenvalue
  at::Tensor weight_rows;     // svd method: stacked key rows [s*d, D]
};

int rank_limit(const ModelConfig& c, const CompressOptions& o) { return c.head_dim * o.share; }

void validate(const ModelConfig& c, const CompressOptions& o, bool have_calibration) {
  if (c.thin_keys)
    throw Error("model already has compressed keys (method '" + c.thin_keys->method +
                "'); compress the original model instead");
  if (o.method != CompressMethod::Svd && !have_calibration)
    throw Error(std::string("method ") + to_string(o.method) +
                " needs calibration text (--calib FILE)");
  if (o.share < 1 || c.n_kv_heads % o.share != 0)
    throw Error("sharing group of " + std::to_string(o.share) + " KV heads does not divide the " +
                std::to_string(c.n_kv_heads) + " KV heads");
  const bool rope = c.positions == PositionKind::Rope;
  if (o.target == CompressTarget::Keys) {
    if (rope && !o.rope) throw Error("this model uses RoPE: choose --rope post, latent or pairs");
    if (!rope && o.rope && *o.rope != RopeMode::Full)
      throw Error("--rope applies only to RoPE models; this model's keys are absorbed exactly");
    if (o.rope == RopeMode::Pairs && o.share != 1)
      throw Error("--rope pairs keeps frequency planes per KV head; it cannot share a latent");
  }
  const auto& r = o.ranks;
  int chosen = (r.key_rank > 0) + (r.key_ratio > 0) + (r.energy > 0) + (r.key_budget > 0);
  if (chosen != 1)
    throw Error("choose exactly one of --key-rank, --key-ratio, --energy, --key-budget");
  const int limit = rank_limit(c, o);
  if (r.key_rank > limit)
    throw Error("--key-rank " + std::to_string(r.key_rank) + " exceeds the key width " +
                std::to_string(limit) + " (head_dim x share)");
  if (r.key_ratio > 1 || r.key_budget > 1 || r.energy >= 1)
    throw Error("--key-ratio and --key-budget must be in (0, 1], --energy in (0, 1)");
  if (r.key_ratio < 0 || r.key_budget < 0 || r.energy < 0 || r.key_rank < 0)
    throw Error("ranks and ratios must be positive");
}

// Fixed or per-layer ranks from the spectra.
std::vector<int> choose_ranks(const ModelConfig& c, const CompressOptions& o,
                              const std::vector<std::vector<HeadSpectrum>>& spectra, bool even) {
  const int L = c.n_layers, limit = rank_limit(c, o);
  auto fix = [&](int r) {
    r = std::clamp(r, 1, limit);
    if (even && r % 2) r = std::min(limit, r + 1);
    return std::max(r, even ? 2 : 1);
  };
  std::vector<int> ranks(L);
  const auto& rc = o.ranks;
  if (rc.key_rank > 0 || rc.key_ratio > 0) {
    int r = rc.key_rank > 0 ? rc.key_rank : static_cast<int>(std::lround(rc.key_ratio * limit));
    if (r < 1)
      throw Error("--key-ratio " + std::to_string(rc.key_ratio) + " leaves no key dimension");
    if (even && r % 2) throw Error("--rope pairs keeps whole planes: the key rank must be even");
    std::fill(ranks.begin(), ranks.end(), std::min(r, limit));
    return ranks;
  }
  if (rc.energy > 0) {
    for (int l = 0; l < L; ++l) {
      int best = 1;
      for (const auto& hs : spectra[l]) {
        int r = 1;
        while (r < limit && discarded_energy(hs.singular_values, r) > rc.energy * rc.energy) ++r;
        best = std::max(best, r);
      }
      ranks[l] = fix(best);
    }
    return ranks;
  }
  // Global budget: every layer starts at the minimum; each step gives one more
  // unit (two for pairs) to the layer whose relative objective drops the most
  // per cached byte. One unit costs key_heads bytes-per-element in every layer,
  // so "per byte" and "per unit" coincide.
  const int step = even ? 2 : 1;
  const int64_t total_units = std::llround(rc.key_budget * L * limit);
  std::vector<double> totals(L, 0.0);
  for (int l = 0; l < L; ++l)
    for (const auto& hs : spectra[l]) totals[l] += hs.singular_values.pow(2).sum().item<double>();
  auto gain = [&](int l, int r) {
    double g = 0;
    for (const auto& hs : spectra[l]) {
      auto e = hs.singular_values.pow(2);
      for (int i = r; i < std::min<int64_t>(r + step, e.size(0)); ++i) g += e[i].item<double>();
    }
    return totals[l] > 0 ? g / totals[l] : 0.0;
  };
  int64_t used = 0;
  std::priority_queue<std::pair<double, int>> heap;
  for (int l = 0; l < L; ++l) {
    ranks[l] = step;
    used += step;
    heap.emplace(gain(l, ranks[l]), l);
  }
  while (used + step <= total_units && !heap.empty()) {
    auto [g, l] = heap.top();
    heap.pop();
    if (ranks[l] + step > limit) continue;
    ranks[l] += step;
    used += step;
    if (ranks[l] + step <= limit) heap.emplace(gain(l, ranks[l]), l);
  }
  return ranks;
}

// Pairs mode: the r/2 planes of each KV head with the largest contribution
// E|q_j| E|k_j| (calibration) or |W_Q,j| |W_K,j| (weights), in plane order.
std::vector<int> pick_planes(const at::Tensor& key_diag, const at::Tensor& query_diag, int64_t d,
                             int64_t keep) {
  const int64_t half = d / 2;
  std::vector<std::pair<double, int>> score;
  for (int64_t j = 0; j < half; ++j) {
    double kk = key_diag[j].item<double>() + key_diag[j + half].item<double>();
    double qq = query_diag[j].item<double>() + query_diag[j + half].item<double>();
    score.emplace_back(std::sqrt(std::max(kk, 0.0) * std::max(qq, 0.0)), static_cast<int>(j));
  }
  std::stable_sort(score.begin(), score.end(), [](auto& a, auto& b) { return a.first > b.first; });
  std::vector<int> planes;
  for (int64_t i = 0; i < keep; ++i) planes.push_back(score[i].second);
  std::sort(planes.begin(), planes.end());
  return planes;
}

// Rows of a [heads*d, ...] rotate-half projection that keep `planes` of head h:
// first halves then second halves, so the kept dims are again rotate-half.
at::Tensor plane_rows(int64_t h, int64_t d, const std::vector<int>& planes) {
  std::vector<int64_t> rows;
  for (int p : planes) rows.push_back(h * d + p);
  for (int p : planes) rows.push_back(h * d + d / 2 + p);
  return at::tensor(rows, at::kLong);
}

Model truncate_queries(const Model& original, const CompressOptions& o, CompressReport* report) {
  const ModelConfig& c = original.config;
  c.require_standard_attention("query truncation");
  Model m = original;
  m.weights.layers = original.weights.layers;
  std::vector<int> ranks(c.n_layers);
  // The query heads of `share` KV heads are truncated together, as the keys of
  // those KV heads would share one latent: share 1 is per query head (the
  // group is one head when there is no GQA), share = n_kv_heads the whole layer.
  const int64_t heads_per_group = o.share == 1 ? 1 : o.share * c.group_size();
  const int64_t rows = heads_per_group * c.head_dim;
  for (int l = 0; l < c.n_layers; ++l) {
    auto& L = m.weights.layers[l];
    const int64_t limit = rows;
    int64_t r = o.ranks.key_rank > 0 ? o.ranks.key_rank
                                     : std::lround(o.ranks.key_ratio * static_cast<double>(limit));
    if (r < 1 || r > limit)
      throw Error("query rank must be in [1, " + std::to_string(limit) + "] (got " +
                  std::to_string(r) + ")");
    ranks[l] = static_cast<int>(r);
    std::vector<at::Tensor> heads;
    for (int64_t h = 0; h < c.n_heads; h += heads_per_group) {
      at::Tensor W = L.wq.narrow(0, h * c.head_dim, rows).to(at::kDouble);
      auto [U, S, Vh] = at::linalg_svd(W, false);
      at::Tensor Ur = U.narrow(1, 0, r);
      heads.push_back(f32(at::matmul(Ur, at::matmul(Ur.t(), W))));
    }
    L.wq = at::cat(heads, 0);
    L.wk = L.wk.clone();
    L.wv = L.wv.clone();
  }
  ThinKeysInfo tk;
  tk.method = to_string(CompressMethod::Svd);
  tk.target = to_string(CompressTarget::Queries);
  m.config.thin_keys = tk;
  m.config.key_rank.assign(c.n_layers, c.head_dim);
  m.finalize();
  if (report) report->ranks = ranks;
  return m;
}

}  // namespace

Model compress_model(const Model& original, const CompressOptions& o,
                     std::span<const int32_t> calibration_tokens, CompressReport* report) {
  auto t0 = std::chrono::steady_clock::now();
  const ModelConfig& c = original.config;
  c.require_standard_attention("key compression");
  validate(c, o, !calibration_tokens.empty());
  if (o.target == CompressTarget::Queries) {
    if (o.ranks.key_rank <= 0 && o.ranks.key_ratio <= 0)
      throw Error("--target queries takes --key-rank or --key-ratio");
    Model m = truncate_queries(original, o, report);
    return m;
  }
  at::NoGradGuard no_grad;
  const bool rope = c.positions == PositionKind::Rope;
  const RopeMode mode = rope ? *o.rope : RopeMode::Full;
  const int64_t Hkv = c.n_kv_heads, G = c.group_size(), d = c.head_dim, s = o.share, nk = Hkv / s;
  const int64_t D = c.dim, H = c.n_heads;

  std::optional<CalibrationStats> stats;
  if (o.method != CompressMethod::Svd) {
    CalibrationOptions co = o.calibration;
    co.share = o.share;
    stats = calibrate(original, calibration_tokens, co);
  }
  // Post mode sees rotated queries/keys; latent and absorbed modes pre-rotation ones.
  const bool rotated = mode == RopeMode::Post;

  // Spectra and factorizations per layer and key head.
  std::vector<std::vector<HeadSpectrum>> spectra(c.n_layers);
  for (int l = 0; l < c.n_layers; ++l) {
    const auto& L = original.weights.layers[l];
    for (int64_t kh = 0; kh < nk; ++kh) {
      HeadSpectrum hs;
      if (o.method == CompressMethod::KqSvd) {
        at::Tensor Ck = (rotated ? stats->key_rot : stats->key_pre)[l][kh];
        at::Tensor Qm = (rotated ? stats->query_rot : stats->query_pre)[l];
        std::vector<at::Tensor> blocks;
        for (int64_t j = 0; j < s; ++j) blocks.push_back(Qm[kh * s + j]);
        at::Tensor Cq = at::block_diag(blocks);
        hs.kq = kq_factorize(Ck, Cq);
        hs.singular_values = hs.kq->S;
      } else if (o.method == CompressMethod::KeyPca) {
        at::Tensor Ck = (rotated ? stats->key_rot : stats->key_pre)[l][kh].to(at::kDouble);
        auto [evals, evecs] = at::linalg_eigh(0.5 * (Ck + Ck.t()));  // ascending
        hs.key_directions = evecs.flip({1}).contiguous();
        // Singular values of the calibration key matrix, for the energy rank rules.
        hs.singular_values = evals.flip({0}).clamp_min(0).sqrt();
      } else {
        hs.weight_rows = L.wk.narrow(0, kh * s * d, s * d).to(at::kDouble);
        hs.singular_values = at::linalg_svdvals(hs.weight_rows);
      }
      spectra[l].push_back(std::move(hs));
    }
  }
  std::vector<int> ranks = choose_ranks(c, o, spectra, mode == RopeMode::Pairs);

  Model m;
  m.config = c;
  m.weights = original.weights;
  ThinKeysInfo tk;
  tk.method = to_string(o.method);
  tk.rope = mode;
  tk.share = o.share;
  m.config.thin_keys = tk;
  m.config.key_rank = ranks;
  std::vector<double> discarded(c.n_layers, 0.0);

  for (int l = 0; l < c.n_layers; ++l) {
    const auto& src = original.weights.layers[l];
    auto& L = m.weights.layers[l];
    const int64_t r = ranks[l];
    L.wv = src.wv.clone();
    L.bv = src.bv.defined() ? src.bv.clone() : at::Tensor();
    at::Tensor Wq = src.wq.to(at::kDouble), Wk = src.wk.to(at::kDouble);
    at::Tensor bq = src.bq.defined() ? src.bq.to(at::kDouble) : at::Tensor();
    at::Tensor bk = src.bk.defined() ? src.bk.to(at::kDouble) : at::Tensor();

    if (mode == RopeMode::Pairs) {
      std::vector<std::vector<int>> planes_per_head;
      std::vector<at::Tensor> q_rows, k_rows;
      for (int64_t g = 0; g < Hkv; ++g) {
        at::Tensor kdiag, qdiag;
        if (stats) {
          kdiag = stats->key_pre[l][g].diagonal();
          qdiag = stats->query_pre[l][g].diagonal();
        } else {
          kdiag = Wk.narrow(0, g * d, d).pow(2).sum(1);
          qdiag = Wq.narrow(0, g * G * d, G * d).view({G, d, D}).pow(2).sum(at::IntArrayRef{0, 2});
        }
        auto planes = pick_planes(kdiag, qdiag, d, r / 2);
        k_rows.push_back(plane_rows(g, d, planes));
        for (int64_t j = 0; j < G; ++j) q_rows.push_back(plane_rows(g * G + j, d, planes));
        planes_per_head.push_back(planes);
        // Discarded share of the plane scores, as a rough energy figure.
        double kept = 0, total = 0;
        for (int64_t p = 0; p < d / 2; ++p) {
          double v = std::sqrt(std::max(0.0, (kdiag[p] + kdiag[p + d / 2]).item<double>()) *
                               std::max(0.0, (qdiag[p] + qdiag[p + d / 2]).item<double>()));
          total += v;
          if (std::find(planes.begin(), planes.end(), p) != planes.end()) kept += v;
        }
        discarded[l] += total > 0 ? (1 - kept / total) / Hkv : 0;
      }
      at::Tensor qi = at::cat(q_rows), ki = at::cat(k_rows);
      L.wq = f32(Wq.index_select(0, qi));
      L.wk = f32(Wk.index_select(0, ki));
      L.bq = bq.defined() ? f32(bq.index_select(0, qi)) : at::Tensor();
      L.bk = bk.defined() ? f32(bk.index_select(0, ki)) : at::Tensor();
      m.config.rope_planes.push_back(planes_per_head);
      continue;
    }

    std::vector<at::Tensor> wk_new, bk_new, wq_new, bq_new, k_down, q_down, k_up;
    std::vector<at::Tensor> B_of_kv(Hkv);
    for (int64_t kh = 0; kh < nk; ++kh) {
      const auto& hs = spectra[l][kh];
      KeyMaps maps = o.method == CompressMethod::KqSvd    ? kq_maps(*hs.kq, r)
                     : o.method == CompressMethod::KeyPca ? key_pca_maps(hs.key_directions, r)
                                                          : weight_svd_maps(hs.weight_rows, r);
      discarded[l] += discarded_energy(hs.singular_values, r) / nk;
      at::Tensor rows = Wk.narrow(0, kh * s * d, s * d);                                 // [s*d, D]
      for (int64_t j = 0; j < s; ++j) B_of_kv[kh * s + j] = maps.B.narrow(0, j * d, d);  // [d, r]
      switch (mode) {
        case RopeMode::Full:  // no RoPE: absorb A^T into W_K; the key bias drops out exactly
          wk_new.push_back(at::matmul(maps.A.t(), rows));
          if (bk.defined()) bk_new.push_back(at::zeros({r}, at::kDouble));
          break;
        case RopeMode::Latent:
          wk_new.push_back(at::matmul(maps.A.t(), rows));
          if (bk.defined())
            bk_new.push_back(at::matmul(maps.A.t(), bk.narrow(0, kh * s * d, s * d)));
          k_up.push_back(maps.P);
          break;
        case RopeMode::Post:
          k_down.push_back(maps.A);
          break;
        case RopeMode::Pairs:
          break;
      }
    }
    if (mode == RopeMode::Full) {
      for (int64_t h = 0; h < H; ++h) {
        const at::Tensor& B = B_of_kv[h / G];
        wq_new.push_back(at::matmul(B.t(), Wq.narrow(0, h * d, d)));
        if (bq.defined()) bq_new.push_back(at::matmul(B.t(), bq.narrow(0, h * d, d)));
      }
      L.wq = f32(at::cat(wq_new));
      L.bq = bq.defined() ? f32(at::cat(bq_new)) : at::Tensor();
    } else {
      L.wq = src.wq.clone();
      L.bq = src.bq.defined() ? src.bq.clone() : at::Tensor();
    }
    if (mode == RopeMode::Post) {
      L.wk = src.wk.clone();
      L.bk = src.bk.defined() ? src.bk.clone() : at::Tensor();
      L.k_down = f32(at::stack(k_down));
      for (int64_t h = 0; h < H; ++h) q_down.push_back(B_of_kv[h / G]);
      L.q_down = f32(at::stack(q_down));
    } else {
      L.wk = f32(at::cat(wk_new));
      L.bk = bk.defined() ? f32(at::cat(bk_new)) : at::Tensor();
      if (mode == RopeMode::Latent) L.k_up = f32(at::stack(k_up));
    }
  }
  m.config.validate();
  m.finalize();
  if (report) {
    report->ranks = ranks;
    report->discarded_energy = discarded;
    report->calibration_tokens = stats ? stats->tokens : 0;
    report->seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  }
  return m;
}

}  // namespace thinkeys
