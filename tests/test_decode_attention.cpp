// Every decode-attention variant against a plain-loop reference attention.
// Float caches must agree to 1e-5 (relative to the largest output of the
// head); quantized caches must agree exactly-up-to-rounding with attention
// over the dequantized rows, and stay within an error bound derived from the
// quantization step when compared with attention over the original rows.
#include <gtest/gtest.h>
#include <hwy/targets.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <limits>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "cache/paged_kv_cache.h"
#include "format/row_codec.h"
#include "kernels/decode_attention.h"
#include "util/error.h"
#include "util/work_pool.h"

namespace thinkeys {
namespace {

struct Case {
  int d = 64, r = 64, G = 1, share = 1, length = 1, begin = 0, block_tokens = 16;
  CacheDType kt = CacheDType::F32, vt = CacheDType::F32;
  bool latent = false, rope = true;
  float q_scale = 1.0f;
  int split = 0;  // > 0: run through AttentionSplits cutting the task into up to this many pieces
  int split_threads = 1;   // > 1: on this many threads, whose pieces claim blocks (not latent)
  bool rotate = true;      // CacheSpec::rotate_keys
  bool by_channel = true;  // CacheSpec::keys_by_channel
};

// Random keys and values for tokens [0, len) of every head of layer 0.
void write_random_rows(PagedKVCache& cache, int id, int heads, int len, int width,
                       std::mt19937& rng) {
  std::normal_distribution<float> N;
  std::vector<float> row(width);
  for (int h = 0; h < heads; ++h)
    for (int t = 0; t < len; ++t) {
      for (auto& x : row) x = N(rng);
      cache.write_key(id, 0, h, t, row.data());
      for (auto& x : row) x = N(rng);
      cache.write_value(id, 0, h, t, row.data());
    }
}

std::string describe(const Case& c) {
  return "d=" + std::to_string(c.d) + " r=" + std::to_string(c.r) + " G=" + std::to_string(c.G) +
         " share=" + std::to_string(c.share) + " len=" + std::to_string(c.length) +
         " begin=" + std::to_string(c.begin) + " bt=" + std::to_string(c.block_tokens) +
         " K=" + to_string(c.kt) + " V=" + to_string(c.vt) + (c.latent ? " latent" : "") +
         (c.latent && c.rope ? "+rope" : "") +
         (c.split ? " split " + std::to_string(c.split) : "") +
         (c.split_threads > 1 ? " threads " + std::to_string(c.split_threads) : "") +
         (c.rotate ? "" : " unrotated") + (c.by_channel ? "" : " token-major keys");
}

// Plain attention of G queries over keys [S][qw] and per-query values.
// Returns outputs [G][d] and, through max_abs_score_err, nothing else: the
// caller supplies keys already rebuilt and rotated.
std::vector<double> reference(
    const std::vector<std::vector<double>>& q,                  // [G][qw]
    const std::vector<std::vector<std::vector<double>>>& keys,  // [G][S][qw]
    const std::vector<std::vector<std::vector<double>>>& vals,  // [G][S][d]
    int begin, int end, double scale) {
  const int G = static_cast<int>(q.size());
  const int d = static_cast<int>(vals[0][0].size());
  std::vector<double> out(G * d, 0.0);
  for (int g = 0; g < G; ++g) {
    std::vector<double> s;
    for (int t = begin; t < end; ++t) {
      double dot = 0;
      for (size_t i = 0; i < q[g].size(); ++i) dot += q[g][i] * keys[g][t][i];
      s.push_back(dot * scale);
    }
    const double m = *std::max_element(s.begin(), s.end());
    double z = 0;
    for (double& x : s) z += (x = std::exp(x - m));
    for (int t = begin; t < end; ++t)
      for (int i = 0; i < d; ++i) out[g * d + i] += s[t - begin] / z * vals[g][t][i];
  }
  return out;
}

struct Built {
  std::vector<float> kernel_out;
  std::vector<double> ref_stored, ref_original;
  double score_bound = 0;  // max over queries and tokens
  double query_bound = 0;  // the same for integer scores' query rounding
  // Integer scores: the reference with the queries rounded as the kernel
  // rounds them, and the score error left where a query element lies so
  // close to a rounding boundary that f32 and double may round it apart.
  bool integer = false;
  std::vector<double> ref_rounded_q;
  double tie_bound = 0;
  std::vector<double> value_err, vmax;  // per [g][i]
};

Built run_case(const Case& c, std::mt19937& rng) {
  const int nv = c.latent ? c.share : std::max(1, std::min(c.share, c.G));
  std::normal_distribution<float> N(0.0f, 1.0f);
  CacheSpec spec{c.kt, c.vt, 32, c.block_tokens, std::size_t{64} << 20};
  spec.rotate_keys = c.rotate;
  spec.keys_by_channel = c.by_channel;
  PagedKVCache cache({{1, c.r, nv, c.d}}, spec);
  const int id = cache.add_sequence();
  EXPECT_EQ(cache.keys(id, 0, 0).by_channel,
            c.by_channel && (c.kt != CacheDType::Int4 || c.block_tokens % 2 == 0));
  cache.reserve(id, c.length);
  cache.set_length(id, c.length);
  const RowFormat kf = cache.key_format(0), vf = cache.value_format(0);

  // Stored rows (f32 originals and what the cache returns after decoding).
  std::vector<std::vector<float>> k_orig(c.length), k_dec(c.length);
  std::vector<std::vector<std::vector<float>>> v_orig(nv), v_dec(nv);
  std::vector<std::vector<double>> k_scale(c.length);       // per element quantization step
  std::vector<double> k_stored_l1(c.length);                // sum |stored value| (rotated basis)
  std::vector<std::vector<double>> k_stored_abs(c.length);  // |stored value| per element
  for (int t = 0; t < c.length; ++t) {
    k_orig[t].resize(c.r);
    for (auto& x : k_orig[t]) x = N(rng);
    cache.write_key(id, 0, 0, t, k_orig[t].data());
    k_dec[t].resize(c.r);
    cache.read_key(id, 0, 0, t, k_dec[t].data());
    std::vector<std::byte> stored(kf.bytes());
    stored_row(cache.keys(id, 0, 0), t, stored.data());
    for (int i = 0; i < c.r; ++i) {
      double step = 0;
      if (is_quantized(c.kt))
        step = row_scale(kf, stored.data(), i / kf.group);
      else if (c.kt == CacheDType::F16)
        step = std::ldexp(std::fabs(k_orig[t][i]), -10);
      else if (c.kt == CacheDType::BF16)
        step = std::ldexp(std::fabs(k_orig[t][i]), -7);
      k_scale[t].push_back(step);      // |k - k_stored| <= step / 2
      if (c.kt == CacheDType::Int8) {  // level i (byte i of the row) times its group's scale
        k_stored_abs[t].push_back(std::fabs(static_cast<double>(static_cast<int8_t>(stored[i])) *
                                            row_scale(kf, stored.data(), i / kf.group)));
        k_stored_l1[t] += k_stored_abs[t].back();
      }
    }
  }
  for (int h = 0; h < nv; ++h)
    for (int t = 0; t < c.length; ++t) {
      std::vector<float> v(c.d), y(c.d);
      for (auto& x : v) x = N(rng);
      cache.write_value(id, 0, h, t, v.data());
      cache.read_value(id, 0, h, t, y.data());
      v_orig[h].push_back(v);
      v_dec[h].push_back(y);
    }

  const int qw = c.latent ? c.d : c.r;
  std::vector<float> q(c.G * qw);
  for (auto& x : q) x = N(rng) * c.q_scale;
  const double scale = 1.0 / std::sqrt(static_cast<double>(c.d));

  // Latent: P^T [r][share*d] and RoPE frequencies.
  std::vector<float> up_t, inv_freq;
  RopeSteps steps;
  LatentKeys lat;
  if (c.latent) {
    up_t.resize(static_cast<size_t>(c.r) * c.share * c.d);
    for (auto& x : up_t) x = N(rng) / std::sqrt(static_cast<float>(c.r));
    for (int i = 0; i < c.d / 2; ++i) inv_freq.push_back(std::pow(10000.0f, -2.0f * i / c.d));
    steps = make_rope_steps(inv_freq, c.block_tokens);
    lat = {up_t.data(), c.share, c.rope ? &steps : nullptr};
  }

  // Keys as each query sees them ([G][S][qw]), from stored or original rows,
  // and the per-token score error bound sum_i |(effective query)_i| * step_i / 2.
  const int per_value = c.G / nv;
  auto keys_for = [&](const std::vector<std::vector<float>>& k) {
    std::vector<std::vector<std::vector<double>>> out(c.G);
    for (int g = 0; g < c.G; ++g)
      for (int t = 0; t < c.length; ++t) {
        if (!c.latent) {
          out[g].emplace_back(k[t].begin(), k[t].end());
          continue;
        }
        const int seg = g / per_value;
        std::vector<double> full(c.d, 0.0);
        for (int i = 0; i < c.d; ++i)
          for (int j = 0; j < c.r; ++j)
            full[i] += static_cast<double>(k[t][j]) *
                       up_t[static_cast<size_t>(j) * c.share * c.d + seg * c.d + i];
        if (c.rope)
          for (int i = 0; i < c.d / 2; ++i) {
            const double a = t * static_cast<double>(inv_freq[i]);
            const double x1 = full[i], x2 = full[i + c.d / 2];
            full[i] = x1 * std::cos(a) - x2 * std::sin(a);
            full[i + c.d / 2] = x2 * std::cos(a) + x1 * std::sin(a);
          }
        out[g].push_back(full);
      }
    return out;
  };
  std::vector<std::vector<double>> qd(c.G);
  for (int g = 0; g < c.G; ++g) qd[g].assign(q.begin() + g * qw, q.begin() + (g + 1) * qw);
  auto vals_for = [&](const std::vector<std::vector<std::vector<float>>>& v) {
    std::vector<std::vector<std::vector<double>>> out(c.G);
    for (int g = 0; g < c.G; ++g)
      for (const auto& row : v[g / per_value]) out[g].emplace_back(row.begin(), row.end());
    return out;
  };

  Built b;
  b.ref_stored = reference(qd, keys_for(k_dec), vals_for(v_dec), c.begin, c.length, scale);
  b.ref_original = reference(qd, keys_for(k_orig), vals_for(v_orig), c.begin, c.length, scale);

  // Score bound: the latent score is linear in c through w = P^T R^T q, so
  // the bound uses |w_j| in place of |q_j|.
  // Rotated rows store H k, so their rounding errors live in the rotated
  // basis: the bound weighs them with H w (H written out entry by entry here,
  // H_ij = (-1)^popcount(i & j) / sqrt(r), independent of the library's
  // butterfly).
  auto rotate = [&](std::vector<double> w) {
    const int n = static_cast<int>(w.size());
    std::vector<double> out(n, 0.0);
    for (int i = 0; i < n; ++i)
      for (int j = 0; j < n; ++j)
        out[i] += (std::popcount(static_cast<unsigned>(i & j)) % 2 ? -w[j] : w[j]) /
                  std::sqrt(static_cast<double>(n));
    return out;
  };
  for (int g = 0; g < c.G; ++g)
    for (int t = c.begin; t < c.length; ++t) {
      std::vector<double> w(c.r, 0.0);
      for (int j = 0; j < c.r; ++j) {
        if (c.latent) {
          // q . R_t P e_j, the weight of latent coordinate j in the score.
          const int seg = g / per_value;
          for (int i = 0; i < c.d / 2; ++i) {
            const double a = c.rope ? t * static_cast<double>(inv_freq[i]) : 0.0;
            const double p1 = up_t[static_cast<size_t>(j) * c.share * c.d + seg * c.d + i];
            const double p2 =
                up_t[static_cast<size_t>(j) * c.share * c.d + seg * c.d + i + c.d / 2];
            w[j] += qd[g][i] * (p1 * std::cos(a) - p2 * std::sin(a)) +
                    qd[g][i + c.d / 2] * (p2 * std::cos(a) + p1 * std::sin(a));
          }
        } else {
          w[j] = qd[g][j];
        }
      }
      if (kf.rotated) w = rotate(w);
      double e = 0;
      for (int j = 0; j < c.r; ++j) e += std::fabs(w[j]) * k_scale[t][j] / 2;
      b.score_bound = std::max(b.score_bound, e * scale);
    }
  // Integer scores (decode_attention_integer_scores) round each scaled (and,
  // for rotated keys, rotated) query to levels of s = max|q| / 127, so each
  // element moves by at most s / 2 and a score by at most s / 2 times the
  // stored key's L1 norm. 1e-6 of slack: the kernel finds s from its f32
  // query, this from the double one.
  const bool integer = decode_attention_integer_scores() && c.kt == CacheDType::Int8 &&
                       cache.keys(id, 0, 0).by_channel && !c.latent && c.r % 4 == 0 &&
                       kf.group % 4 == 0;
  //
  // The tight check: the same rounding done here in double, w = rotated
  // scaled query, level = round(w / s), and the reference attention run
  // with the rounded query (rotated back: the normalized Hadamard matrix is
  // its own inverse). Elements within 1e-3 of a rounding tie may round the
  // other way in the kernel's f32, one step s apart: their s |k| is the only
  // allowance beyond float rounding.
  b.integer = integer;
  std::vector<std::vector<double>> rounded_q(c.G);
  if (integer)
    for (int g = 0; g < c.G; ++g) {
      std::vector<double> w(qd[g].begin(), qd[g].end());
      if (kf.rotated) w = rotate(w);
      double top = 0;
      for (double& x : w) top = std::max(top, std::fabs(x *= scale));
      const double half_step = top / 127 / 2 * (1 + 1e-6);
      for (int t = c.begin; t < c.length; ++t)
        b.query_bound = std::max(b.query_bound, half_step * k_stored_l1[t]);
      const double step = top / 127;
      std::vector<bool> tie(c.r, false);
      for (int j = 0; j < c.r; ++j) {
        const double x = step > 0 ? w[j] / step : 0.0;
        tie[j] = std::fabs(std::fabs(x - std::floor(x)) - 0.5) < 1e-3;
        w[j] = std::nearbyint(x) * step / scale;
      }
      rounded_q[g] = kf.rotated ? rotate(w) : w;
      for (int t = c.begin; t < c.length; ++t) {
        double e = 0;
        for (int j = 0; j < c.r; ++j)
          if (tie[j]) e += step * k_stored_abs[t][j];
        b.tie_bound = std::max(b.tie_bound, e);
      }
    }
  if (integer)
    b.ref_rounded_q =
        reference(rounded_q, keys_for(k_dec), vals_for(v_dec), c.begin, c.length, scale);
  b.value_err.assign(c.G * c.d, 0.0);
  b.vmax.assign(c.G * c.d, 0.0);
  for (int g = 0; g < c.G; ++g)
    for (int t = c.begin; t < c.length; ++t)
      for (int i = 0; i < c.d; ++i) {
        const auto& vo = v_orig[g / per_value][t];
        const auto& vd = v_dec[g / per_value][t];
        b.value_err[g * c.d + i] =
            std::max<double>(b.value_err[g * c.d + i], std::fabs(vo[i] - vd[i]));
        b.vmax[g * c.d + i] = std::max<double>(b.vmax[g * c.d + i], std::fabs(vo[i]));
      }

  AttentionShape shape;
  shape.head_dim = c.d;
  shape.max_queries = c.G;
  shape.max_key_width = c.r;
  shape.block_tokens = c.block_tokens;
  shape.scale = static_cast<float>(scale);
  shape.max_share = c.share;
  AttentionScratch scratch(shape);
  std::vector<PagedRows> values;
  for (int h = 0; h < nv; ++h) values.push_back(cache.values(id, 0, h));
  b.kernel_out.assign(c.G * c.d, std::nanf(""));
  AttentionTask task{q.data(), c.G,      cache.keys(id, 0, 0), values.data(), nv,
                     c.begin,  c.length, b.kernel_out.data()};
  if (c.split > 0) {
    // Split pieces of at least one block; on one thread cut at fixed
    // blocks, on more one piece per thread claiming blocks.
    WorkPool pool(c.split_threads);
    std::vector<AttentionScratch> scratches;
    for (int t = 0; t < c.split_threads; ++t) scratches.emplace_back(shape);
    AttentionSplits splits(1, c.split);
    const LatentKeys* lp = c.latent ? &lat : nullptr;
    splits.run(shape, std::span<const AttentionTask>(&task, 1),
               c.latent ? std::span<const LatentKeys* const>(&lp, 1)
                        : std::span<const LatentKeys* const>(),
               pool, scratches);
    const int blocks = (c.length + c.block_tokens - 1) / c.block_tokens - c.begin / c.block_tokens;
    const bool claimed = c.split_threads > 1 && !c.latent && blocks > 1;
    EXPECT_EQ(splits.last_pieces(),
              claimed ? std::min(blocks, c.split_threads) : std::clamp(blocks, 1, c.split));
  } else {
    decode_attention(shape, task, c.latent ? &lat : nullptr, scratch);
  }
  return b;
}

void check(const Case& c, std::mt19937& rng) {
  SCOPED_TRACE(describe(c));
  Built b = run_case(c, rng);
  const int d = c.d;
  for (int g = 0; g < c.G; ++g) {
    double row_max = 0;
    for (int i = 0; i < d; ++i) row_max = std::max(row_max, std::fabs(b.ref_stored[g * d + i]));
    // Against the rows actually stored: only float rounding differs. The
    // latent path rebuilds keys in f32, which costs a little more.
    // Integer scores add the query's rounding: with every score off by at
    // most E, each softmax weight moves by a factor within e^{+-2E}, so the
    // weights move by at most e^{2E} - 1 in L1 (times the largest stored
    // value).
    const double tol = (c.latent ? 1e-4 : 1e-5) * std::max(row_max, 1e-3);
    for (int i = 0; i < d; ++i) {
      const double q_tol =
          std::expm1(2 * b.query_bound) * (b.vmax[g * d + i] + b.value_err[g * d + i]);
      ASSERT_NEAR(b.kernel_out[g * d + i], b.ref_stored[g * d + i], tol + q_tol)
          << "g=" << g << " i=" << i << " query rounding bound " << b.query_bound;
    }
    // Against attention with the query rounded as the kernel rounds it:
    // float rounding only (and any tie that rounded the other way).
    if (b.integer)
      for (int i = 0; i < d; ++i) {
        const double tie_tol =
            std::expm1(2 * b.tie_bound) * (b.vmax[g * d + i] + b.value_err[g * d + i]);
        ASSERT_NEAR(b.kernel_out[g * d + i], b.ref_rounded_q[g * d + i], tol + tie_tol)
            << "g=" << g << " i=" << i << " tie bound " << b.tie_bound;
      }
    // Against the original rows: likewise with the keys' rounding added;
    // values add at most their own error.
    const double spread = std::expm1(2 * (b.score_bound + b.query_bound));
    for (int i = 0; i < d; ++i) {
      const double bound = spread * b.vmax[g * d + i] + b.value_err[g * d + i] + tol;
      ASSERT_LE(std::fabs(b.kernel_out[g * d + i] - b.ref_original[g * d + i]), bound)
          << "g=" << g << " i=" << i << " score bound " << b.score_bound;
    }
  }
}

// Runs fn once per instruction set this machine supports and the kernels
// were compiled for (e.g. AVX-512, AVX2, SSE4), so every dispatch target is
// checked, not just the best one.
template <class F>
void on_every_target(F fn) {
  for (int64_t target : hwy::SupportedAndGeneratedTargets()) {
    hwy::SetSupportedTargetsForTest(target);
    SCOPED_TRACE(hwy::TargetName(target));
    fn();
  }
  hwy::SetSupportedTargetsForTest(0);
}

TEST(DecodeAttention, ChecksMoreThanOneTarget) {
  // An x86-64 or Arm build generates several targets (e.g. AVX3, AVX2, SSE4,
  // SSSE3, EMU128); with only one, the other code paths would never run here.
  const std::vector<int64_t> targets = hwy::SupportedAndGeneratedTargets();
  ASSERT_GE(targets.size(), 2u);
  std::vector<std::string> names;
  on_every_target([&] { names.push_back(decode_attention_target()); });
  for (const auto& n : names) std::printf("decode attention target: %s\n", n.c_str());
  // The kernel really dispatched to each target in turn, not to the best one
  // every time.
  ASSERT_EQ(names.size(), targets.size());
  for (size_t i = 0; i < targets.size(); ++i) EXPECT_EQ(names[i], hwy::TargetName(targets[i]));
}

const CacheDType kAll[] = {CacheDType::F32, CacheDType::F16, CacheDType::BF16, CacheDType::Int8,
                           CacheDType::Int4};

TEST(DecodeAttention, FloatCacheMatchesReferenceOverShapes) {
  on_every_target([&] {
    std::mt19937 rng(7);
    for (int d : {64, 40})
      for (int r : {1, 3, 8, d})
        for (int G : {1, 2, 4, 8})
          for (int length : {1, 15, 16, 17, 100}) {
            Case c;
            c.d = d, c.r = r, c.G = G, c.length = length;
            c.q_scale = r == 1 ? 4.0f : 1.0f;
            check(c, rng);
          }
  });
}

// Scores spread over tens of units put the softmax's exponentials (of
// score minus running max) anywhere from 0 down past e^-86, where the
// kernel's exp gives 0; the weights must still match the double reference.
TEST(DecodeAttention, SoftmaxOverAWideRangeOfScores) {
  on_every_target([&] {
    std::mt19937 rng(11);
    for (float q_scale : {4.0f, 12.0f, 40.0f})
      for (int length : {17, 100, 300}) {
        Case c;
        c.G = 2, c.length = length, c.q_scale = q_scale, c.block_tokens = 64;
        check(c, rng);
      }
  });
}

TEST(DecodeAttention, EveryDtypePairWithinDerivedBound) {
  on_every_target([&] {
    std::mt19937 rng(11);
    for (CacheDType kt : kAll)
      for (CacheDType vt : kAll)
        for (int r : {1, 3, 8, 16, 24, 40, 64})
          for (int G : {1, 4})
            for (bool rotate : {true, false}) {
              if (!rotate && !is_quantized(kt)) continue;
              Case c;
              c.r = r, c.G = G, c.kt = kt, c.vt = vt, c.length = 1 + static_cast<int>(rng() % 70);
              c.rotate = rotate;
              check(c, rng);
            }
  });
}

TEST(DecodeAttention, LongContextsAndBlockSizes) {
  on_every_target([&] {
    std::mt19937 rng(13);
    for (int bt : {1, 16, 32, 7})
      for (int length : {bt, bt + 1, 4 * bt - 1, 4096})
        for (CacheDType kt : {CacheDType::F32, CacheDType::Int4}) {
          Case c;
          c.d = 64, c.r = 16, c.G = 4, c.block_tokens = bt, c.length = length, c.kt = kt;
          c.vt = kt == CacheDType::F32 ? CacheDType::F32 : CacheDType::Int8;
          c.q_scale = 3.0f;  // peaky softmax: the running max moves between blocks
          check(c, rng);
        }
  });
}

TEST(DecodeAttention, WindowStartsInsideABlock) {
  on_every_target([&] {
    std::mt19937 rng(17);
    for (int begin : {1, 15, 16, 32, 40})
      for (CacheDType kt : {CacheDType::F32, CacheDType::Int4}) {
        Case c;
        c.r = 8, c.G = 2, c.length = 60, c.begin = begin, c.kt = kt, c.block_tokens = 32;
        check(c, rng);
      }
  });
}

TEST(DecodeAttention, SharedKeyHeadServesSeveralValueHeads) {
  on_every_target([&] {
    std::mt19937 rng(19);
    for (int G : {2, 4, 8}) {
      Case c;
      c.r = 8, c.G = G, c.share = 2, c.length = 50, c.kt = CacheDType::Int8, c.vt = CacheDType::F16;
      check(c, rng);
    }
  });
}

TEST(DecodeAttention, LatentRopeRebuildsAndRotatesKeys) {
  on_every_target([&] {
    std::mt19937 rng(23);
    for (int share : {1, 2})
      for (int r : {1, 3, 8, 64})
        for (bool rope : {true, false})
          for (CacheDType kt :
               {CacheDType::F32, CacheDType::F16, CacheDType::Int8, CacheDType::Int4})
            for (int length : {1, 17, 300}) {
              Case c;
              c.d = 64, c.r = r, c.G = 2 * share, c.share = share, c.latent = true, c.rope = rope;
              c.kt = kt, c.length = length;
              check(c, rng);
            }
    Case c;  // long: the angle walk must not drift
    c.d = 64, c.r = 16, c.G = 4, c.latent = true, c.length = 4096, c.block_tokens = 32;
    check(c, rng);
  });
}

// The kernel scores 4 tokens at a time (then single tokens), keeps up to 4
// queries per pass in registers (then 2, then 1) and accumulates values in
// tiles of 8, 4, 2, 1 vectors: group sizes, widths and lengths that leave
// every kind of remainder, with block sizes that split those tiles.
TEST(DecodeAttention, TileRemaindersOfTokensQueriesAndWidths) {
  on_every_target([&] {
    std::mt19937 rng(31);
    for (int d : {128, 96, 40, 16})
      for (int G : {3, 5, 6, 7, 16})
        for (int length : {1, 3, 4, 5, 9, 35, 131})
          for (int bt : {16, 64, 6}) {
            Case c;
            c.d = d, c.r = d / 4 == 0 ? 1 : d / 4, c.G = G, c.length = length, c.block_tokens = bt;
            const int pick = static_cast<int>(rng() % 4);
            c.kt = pick == 0 ? CacheDType::F32 : pick == 1 ? CacheDType::Int8 : CacheDType::F16;
            c.vt = pick == 3 ? CacheDType::BF16 : CacheDType::F16;
            c.q_scale = 2.0f;
            check(c, rng);
          }
  });
}

// Keys stored by channel are scored a vector of tokens at a time, in tiles
// of 4, 2 and 1 vectors and one by one past the last whole vector, int8
// keys a scale group at a time (widths 33 and 128 have several); stored
// token by token, a row at a time. Both against the reference, over widths,
// groups, lengths and windows that leave every remainder, with blocks
// shorter than a vector and blocks of several tiles.
TEST(DecodeAttention, KeysByChannelOrByToken) {
  on_every_target([&] {
    std::mt19937 rng(41);
    // int4 keys by channel: bt 16 is one vector per half on 8-lane targets
    // but not on 16-lane ones, and windows from length / 3 mostly start off
    // the vector grid, so both the channel and the gathered-rows paths run;
    // bt 5 keeps them token by token.
    for (CacheDType kt :
         {CacheDType::F32, CacheDType::F16, CacheDType::BF16, CacheDType::Int8, CacheDType::Int4})
      for (bool by_channel : {true, false})
        for (int r : {1, 5, 16, 33, 128})
          for (int G : {1, 3, 4, 8})
            for (int bt : {5, 16, 64, 128}) {
              Case c;
              c.d = 32, c.r = r, c.G = G, c.kt = kt, c.vt = CacheDType::F16, c.block_tokens = bt;
              c.by_channel = by_channel;
              c.length = 1 + static_cast<int>(rng() % 300);
              c.begin = static_cast<int>(rng() % 3) == 0 ? c.length / 3 : 0;
              c.q_scale = 2.0f;
              check(c, rng);
            }
  });
}

// int8 keys by channel on the integer path (where the CPU has it; the f32
// path elsewhere, against the same bound): the model's thin gqa and mha
// heads (r = 16, 3 or 1 queries per key head) and several scale groups
// (r = 64 and 40: groups of 32, the last of 8), over whole blocks of 64
// tokens (four channel rows transposed), blocks of 16 (four channels in one
// 64-byte load), 32 and 7 (loaded channel by channel),
// runs that end inside a block and windows that start inside one (masked
// loads), split into pieces, with peaky and flat queries.
TEST(DecodeAttention, Int8KeysByChannelWithinQueryRoundingBound) {
  on_every_target([&] {
    std::mt19937 rng(43);
    for (int r : {16, 64, 40})
      for (int G : {3, 1, 4, 6})
        for (int bt : {64, 16, 32, 7})
          for (int length : {5, 16, 47, 300}) {
            Case c;
            c.d = 64, c.r = r, c.G = G, c.block_tokens = bt, c.length = length;
            c.kt = CacheDType::Int8, c.vt = CacheDType::F16;
            c.begin = length > 16 && rng() % 2 ? length / 3 : 0;
            c.split = length == 300 ? 3 : 0;
            c.q_scale = rng() % 2 ? 4.0f : 0.5f;
            c.rotate = rng() % 4 != 0;
            check(c, rng);
          }
  });
}

// Where the CPU has AVX-512 VNNI and VBMI, the AVX-512 target takes the
// integer path (so the test above covers it here); other targets never do.
TEST(DecodeAttention, IntegerScoresWhereTheCpuHasThem) {
#if defined(__x86_64__)
  const bool cpu = __builtin_cpu_supports("avx512vnni") && __builtin_cpu_supports("avx512vbmi");
#else
  const bool cpu = false;
#endif
  bool any = false;
  on_every_target([&] {
    const bool here = decode_attention_integer_scores();
    any = any || here;
    if (std::string(decode_attention_target()) != "AVX3") EXPECT_FALSE(here);
  });
  EXPECT_EQ(any, cpu);
  std::printf("integer scores of int8 keys on this CPU: %s\n", any ? "yes" : "no");
}

// Two value heads per key head with 3 and 6 queries each (passes of 2 + 1 and
// 4 + 2 queries), full-width keys, windows that start inside a block.
TEST(DecodeAttention, SharedKeyHeadWithOddGroups) {
  on_every_target([&] {
    std::mt19937 rng(37);
    for (int G : {6, 12})
      for (int begin : {0, 5, 33}) {
        Case c;
        c.d = 64, c.r = 64, c.G = G, c.share = 2, c.length = 150, c.begin = begin;
        c.kt = CacheDType::F16, c.vt = CacheDType::F16;
        check(c, rng);
      }
  });
}

TEST(DecodeAttention, SplitPiecesMergeToTheWholeTask) {
  // A task cut into pieces of whole blocks, each with its own softmax
  // state, merged back: the same reference bound as one pass, over lengths
  // that end inside a block, windows that start inside one, GQA groups,
  // shared key heads, quantized rows and the latent RoPE kernel (whose
  // pieces start their rotation at a later position).
  std::mt19937 rng(41);
  on_every_target([&] {
    for (int split : {2, 3, 7})
      for (int length : {1, 40, 129, 1000}) {
        // split 7 also on 2 and 3 threads: pieces that claim blocks.
        for (int threads : split == 7 ? std::vector<int>{1, 2, 3} : std::vector<int>{1}) {
          check({64, 64, 4, 1, length, 0, 16, CacheDType::F32, CacheDType::F32, false, true, 1.0f,
                 split, threads},
                rng);
          check({32, 3, 2, 1, length, length / 3, 16, CacheDType::F16, CacheDType::Int8, false,
                 true, 1.0f, split, threads},
                rng);
          check({32, 8, 4, 2, length, 0, 8, CacheDType::Int4, CacheDType::F16, false, true, 1.0f,
                 split, threads},
                rng);
        }
        check({32, 8, 2, 2, length, length / 2, 16, CacheDType::F32, CacheDType::F32, true, true,
               1.0f, split},
              rng);
      }
  });
}

TEST(DecodeAttention, SplitLeavesEnoughTasksAlone) {
  // With at least per_thread pieces' worth of tasks per thread nothing is
  // cut, nor with two or more tasks per thread of about one length; other
  // sets of as many tasks as threads but fewer pieces than wanted are cut
  // into pieces of min_blocks; fewer tasks than threads become one piece per
  // thread (at most one per block) that claim blocks as they go.
  CacheSpec spec{CacheDType::F32, CacheDType::F32, 32, 16, std::size_t{16} << 20};
  PagedKVCache cache({{4, 16, 4, 16}}, spec);
  const int id = cache.add_sequence();
  cache.reserve(id, 1600);
  cache.set_length(id, 1600);
  std::vector<float> row(16, 0.5f), q(4 * 16, 0.1f), out(4 * 16);
  for (int h = 0; h < 4; ++h)
    for (int t = 0; t < 1600; ++t) {
      cache.write_key(id, 0, h, t, row.data());
      cache.write_value(id, 0, h, t, row.data());
    }
  AttentionShape shape{16, 1, 16, 16, 0.25f, 1};
  WorkPool pool(2);
  std::vector<AttentionScratch> scratch;
  for (int t = 0; t < 2; ++t) scratch.emplace_back(shape);
  std::vector<PagedRows> vals;
  for (int h = 0; h < 4; ++h) vals.push_back(cache.values(id, 0, h));
  std::vector<AttentionTask> tasks;
  for (int h = 0; h < 4; ++h)
    tasks.push_back(
        {q.data() + h * 16, 1, cache.keys(id, 0, h), &vals[h], 1, 0, 1600, out.data() + h * 16});
  // Every value row is 0.5, so every output is 0.5 however it was cut.
  auto all_half = [&] {
    for (float x : out) EXPECT_FLOAT_EQ(x, 0.5f);
    std::fill(out.begin(), out.end(), 0.0f);
  };
  AttentionSplits few(4, 2);  // want 4 pieces: the 4 tasks stay whole
  few.run(shape, tasks, {}, pool, scratch);
  EXPECT_EQ(few.last_pieces(), 0);
  all_half();
  // Want 16, but 4 tasks of one length are two per thread: they stay whole.
  AttentionSplits many(4, 8);
  many.run(shape, tasks, {}, pool, scratch);
  EXPECT_EQ(many.last_pieces(), 0);
  all_half();
  // One task 30 blocks shorter (past a quarter): each 100-block task in 4
  // pieces of 25, the 70-block one in 4 of 17-18.
  tasks[3].begin = 30 * 16;
  many.run(shape, tasks, {}, pool, scratch);
  EXPECT_EQ(many.last_pieces(), 16);
  all_half();
  // Three tasks are fewer than two per thread: cut, 6 pieces each.
  tasks[3].begin = 0;
  many.run(shape, std::span<const AttentionTask>(tasks).first(3), {}, pool, scratch);
  EXPECT_EQ(many.last_pieces(), 18);
  for (int i = 0; i < 48; ++i) EXPECT_FLOAT_EQ(out[i], 0.5f);
  std::fill(out.begin(), out.end(), 0.0f);
  many.run(shape, std::span<const AttentionTask>(tasks).first(1), {}, pool, scratch);
  EXPECT_EQ(many.last_pieces(), 2);  // one task, two threads: a piece each
  for (int i = 0; i < 16; ++i) EXPECT_FLOAT_EQ(out[i], 0.5f);

  // One task on 8 threads: 8 pieces of a 16-block task, 5 of a 5-block
  // one, and a 1-block task is not cut.
  AttentionTask short_task = tasks[0];
  short_task.end = 16 * 16;
  AttentionSplits splits;
  WorkPool wide(8);
  while (scratch.size() < 8) scratch.emplace_back(shape);
  for (const auto& [blocks, pieces] : std::vector<std::pair<int, int>>{{16, 8}, {5, 5}, {1, 1}}) {
    short_task.end = blocks * 16;
    std::fill(out.begin(), out.end(), 0.0f);
    splits.run(shape, std::span<const AttentionTask>(&short_task, 1), {}, wide, scratch);
    EXPECT_EQ(splits.last_pieces(), pieces) << blocks << " blocks";
    for (int i = 0; i < 16; ++i) EXPECT_FLOAT_EQ(out[i], 0.5f);
  }
}

// Pieces that claim blocks: one that claims them all (the others came too
// late) gives the whole task's output, and one that got none contributes
// nothing to the merge (output 0, log-sum-exp -inf).
TEST(DecodeAttention, ClaimingPiecesCoverTheTaskOnce) {
  std::mt19937 rng(53);
  std::normal_distribution<float> N;
  CacheSpec spec{CacheDType::F16, CacheDType::F16, 32, 16, std::size_t{16} << 20};
  PagedKVCache cache({{2, 32, 2, 32}}, spec);
  const int id = cache.add_sequence(), len = 16 * 9 + 5;
  cache.reserve(id, len);
  cache.set_length(id, len);
  write_random_rows(cache, id, 2, len, 32, rng);
  AttentionShape shape{32, 2, 32, 16, 0.2f, 1, 2};
  AttentionScratch scratch(shape);
  std::vector<float> q(2 * 2 * 32);
  for (auto& x : q) x = N(rng);
  std::vector<PagedRows> vals{cache.values(id, 0, 0), cache.values(id, 0, 1)};
  std::vector<float> whole(2 * 2 * 32), mine(whole.size()), theirs(whole.size());
  std::vector<float> lse_mine(4), lse_theirs(4);
  auto tasks_into = [&](float* out, float* lse, ShareClaims* claims, int piece) {
    std::vector<AttentionTask> t;
    for (int h = 0; h < 2; ++h) {
      AttentionTask a{q.data() + h * 64, 2, cache.keys(id, 0, h), &vals[h], 1, 3, len,
                      out + h * 64};
      a.lse = lse ? lse + h * 2 : nullptr;
      a.blocks = claims;
      a.piece = piece;
      t.push_back(a);
    }
    return t;
  };
  auto w = tasks_into(whole.data(), nullptr, nullptr, 0);
  decode_attention_heads(shape, w, {}, scratch);
  ShareClaims claims;
  claims.reset(10, 2);  // blocks 0-9 of tokens [3, 149)
  auto a = tasks_into(mine.data(), lse_mine.data(), &claims, 0);
  decode_attention_heads(shape, a, {}, scratch);  // takes its 5, then steals the other 5
  auto b = tasks_into(theirs.data(), lse_theirs.data(), &claims, 1);
  decode_attention_heads(shape, b, {}, scratch);
  for (std::size_t i = 0; i < whole.size(); ++i) {
    EXPECT_NEAR(mine[i], whole[i], 1e-5f * (1.0f + std::fabs(whole[i]))) << i;
    EXPECT_EQ(theirs[i], 0.0f) << i;
  }
  for (int g = 0; g < 4; ++g) {
    EXPECT_TRUE(std::isfinite(lse_mine[g]));
    EXPECT_EQ(lse_theirs[g], -std::numeric_limits<float>::infinity());
  }
}

TEST(DecodeAttention, PoolRunsTasksOnEveryThread) {
  // Same task list on 1 and 3 threads gives identical outputs.
  std::mt19937 rng(29);
  CacheSpec spec{CacheDType::F16, CacheDType::F16, 32, 16, std::size_t{16} << 20};
  PagedKVCache cache({{4, 8, 4, 32}}, spec);
  std::normal_distribution<float> N;
  std::vector<int> ids;
  for (int s = 0; s < 5; ++s) {
    int id = cache.add_sequence();
    int len = 1 + s * 37;
    cache.reserve(id, len);
    cache.set_length(id, len);
    write_random_rows(cache, id, 4, len, 32, rng);
    ids.push_back(id);
  }
  AttentionShape shape{32, 2, 8, 16, 0.2f, 1};
  std::vector<float> q(5 * 4 * 2 * 8);
  for (auto& x : q) x = N(rng);
  auto run = [&](int threads) {
    WorkPool pool(threads);
    std::vector<AttentionScratch> scratch;
    for (int t = 0; t < threads; ++t) scratch.emplace_back(shape);
    std::vector<PagedRows> vals;
    for (int id : ids)
      for (int h = 0; h < 4; ++h) vals.push_back(cache.values(id, 0, h));
    std::vector<float> out(5 * 4 * 2 * 32);
    std::vector<AttentionTask> tasks;
    for (int s = 0; s < 5; ++s)
      for (int h = 0; h < 4; ++h)
        tasks.push_back({q.data() + (s * 4 + h) * 16, 2, cache.keys(ids[s], 0, h), &vals[s * 4 + h],
                         1, 0, cache.length(ids[s]), out.data() + (s * 4 + h) * 64});
    run_decode_attention(shape, tasks, {}, pool, scratch);
    return out;
  };
  EXPECT_EQ(run(1), run(3));
  EXPECT_STRNE(decode_attention_target(), "");
}

}  // namespace
}  // namespace thinkeys

namespace thinkeys {
namespace {

// Several sequences, nk key heads each with `share` value heads and G
// queries; rows written from known f32 values so a plain double attention
// over them is the expectation.
struct MultiHead {
  int nk = 4, share = 2, G = 4, r = 24, d = 32, bt = 16;
  CacheDType kt = CacheDType::F32, vt = CacheDType::F32;
  std::vector<int> lengths{1, 37, 160, 300};
  std::vector<int> begins{0, 5, 19, 0};
};

struct MultiRun {
  std::vector<float> out;
  std::vector<double> ref;
  int pieces = 0;
};

// Runs every task of every sequence through AttentionSplits with heads
// grouped up to max_heads, on `threads` threads, split down to single blocks.
MultiRun run_multi(const MultiHead& m, int max_heads, int threads, int per_thread,
                   bool with_reference) {
  std::mt19937 rng(41);
  std::normal_distribution<float> N;
  const int H = m.nk * m.G, nv = m.nk * m.share;
  CacheSpec spec{m.kt, m.vt, 8, m.bt, std::size_t{32} << 20};
  PagedKVCache cache({{m.nk, m.r, nv, m.d}}, spec);
  const int S = static_cast<int>(m.lengths.size());
  std::vector<int> ids;
  // rows[s][head][t]: the values written, as the reference reads them.
  std::vector<std::vector<std::vector<std::vector<double>>>> K(S), V(S);
  for (int s = 0; s < S; ++s) {
    const int id = cache.add_sequence(), len = m.lengths[s];
    cache.reserve(id, len);
    cache.set_length(id, len);
    K[s].assign(m.nk, {});
    V[s].assign(nv, {});
    std::vector<float> row(std::max(m.r, m.d));
    for (int t = 0; t < len; ++t) {
      for (int h = 0; h < m.nk; ++h) {
        for (int i = 0; i < m.r; ++i) row[i] = N(rng);
        cache.write_key(id, 0, h, t, row.data());
        K[s][h].emplace_back(row.begin(), row.begin() + m.r);
      }
      for (int h = 0; h < nv; ++h) {
        for (int i = 0; i < m.d; ++i) row[i] = N(rng);
        cache.write_value(id, 0, h, t, row.data());
        V[s][h].emplace_back(row.begin(), row.begin() + m.d);
      }
    }
    ids.push_back(id);
  }
  std::vector<float> q(static_cast<std::size_t>(S) * H * m.r);
  for (auto& x : q) x = N(rng);
  const float scale = 0.3f;

  AttentionShape shape;
  shape.head_dim = m.d;
  shape.max_queries = m.G;
  shape.max_key_width = m.r;
  shape.block_tokens = m.bt;
  shape.scale = scale;
  shape.max_heads = max_heads;
  WorkPool pool(threads);
  std::vector<AttentionScratch> scratch;
  for (int t = 0; t < threads; ++t) scratch.emplace_back(shape);
  std::vector<PagedRows> values;
  for (int s = 0; s < S; ++s)
    for (int h = 0; h < nv; ++h) values.push_back(cache.values(ids[s], 0, h));
  MultiRun run;
  run.out.assign(static_cast<std::size_t>(S) * H * m.d, std::nanf(""));
  std::vector<AttentionTask> tasks;
  for (int s = 0; s < S; ++s)
    for (int h = 0; h < m.nk; ++h) {
      const std::size_t q0 = (static_cast<std::size_t>(s) * H + h * m.G);
      tasks.push_back({q.data() + q0 * m.r, m.G, cache.keys(ids[s], 0, h),
                       &values[static_cast<std::size_t>(s) * nv + h * m.share], m.share,
                       m.begins[s], m.lengths[s], run.out.data() + q0 * m.d});
    }
  AttentionSplits splits(1, per_thread);
  splits.run(shape, tasks, {}, pool, scratch);
  run.pieces = splits.last_pieces();

  if (with_reference) {
    run.ref.resize(run.out.size());
    for (int s = 0; s < S; ++s)
      for (int h = 0; h < m.nk; ++h) {
        std::vector<std::vector<double>> qd;
        std::vector<std::vector<std::vector<double>>> keys, vals;
        for (int g = 0; g < m.G; ++g) {
          const float* qp = q.data() + (static_cast<std::size_t>(s) * H + h * m.G + g) * m.r;
          qd.emplace_back(qp, qp + m.r);
          keys.push_back(K[s][h]);
          vals.push_back(V[s][h * m.share + g / (m.G / m.share)]);
        }
        const auto o = reference(qd, keys, vals, m.begins[s], m.lengths[s], scale);
        std::copy(o.begin(), o.end(),
                  run.ref.begin() + (static_cast<std::size_t>(s) * H + h * m.G) * m.d);
      }
  }
  return run;
}

TEST(DecodeAttention, HeadsInLockstepMatchReferenceWholeAndSplit) {
  const MultiHead m;
  on_every_target([&] {
    // Heads one at a time, 4 at a time (a whole sequence), and 3 at a time
    // (a sequence's heads in two uneven groups); whole and cut into pieces.
    for (int max_heads : {1, 3, 4})
      for (int per_thread : {1, 64}) {
        SCOPED_TRACE("max_heads=" + std::to_string(max_heads) +
                     " per_thread=" + std::to_string(per_thread));
        const MultiRun run = run_multi(m, max_heads, 2, per_thread, true);
        if (per_thread == 64) EXPECT_GT(run.pieces, 0);
        for (std::size_t i = 0; i < run.out.size(); i += m.d) {
          double row_max = 1e-3;
          for (int k = 0; k < m.d; ++k) row_max = std::max(row_max, std::fabs(run.ref[i + k]));
          for (int k = 0; k < m.d; ++k)
            ASSERT_NEAR(run.out[i + k], run.ref[i + k], 1e-5 * row_max) << "at " << i + k;
        }
      }
  });
}

TEST(DecodeAttention, LockstepIsTheSameArithmeticAsOneHeadAtATime) {
  // Quantized keys and f16 values: the same per-head operations in another
  // order of heads, so the outputs agree bit for bit.
  MultiHead m;
  m.kt = CacheDType::Int4;
  m.vt = CacheDType::F16;
  m.r = 32;
  // Whole, then split: 4x the pieces wanted for 4x the ranges, so every
  // task is cut the same way in both runs.
  for (int per_thread : {1, 16}) {
    const MultiRun one = run_multi(m, 1, 1, 4 * per_thread, false);
    const MultiRun all = run_multi(m, 4, 1, per_thread, false);
    EXPECT_EQ(one.pieces, 4 * all.pieces);
    ASSERT_EQ(one.out.size(), all.out.size());
    for (std::size_t i = 0; i < one.out.size(); ++i) ASSERT_EQ(one.out[i], all.out[i]) << i;
  }
}

// Latent RoPE heads in lockstep: heads after a block's first reuse its
// per-token angles (attention_block-inl.h), which must be the floats each
// would have walked to itself. So heads run together give one head at a
// time's outputs bit for bit, from a window start inside a block (the walk
// starts mid-table) and for f16 and int8 latents.
TEST(DecodeAttention, LatentHeadsInLockstepAreOneHeadAtATime) {
  on_every_target([&] {
    const int nk = 4, r = 16, d = 64, bt = 16, G = 2, length = 150, begin = 7;
    for (CacheDType kt : {CacheDType::F16, CacheDType::Int8}) {
      std::mt19937 rng(43);
      std::normal_distribution<float> N;
      CacheSpec spec{kt, CacheDType::F16, 8, bt, std::size_t{16} << 20};
      PagedKVCache cache({{nk, r, nk, d}}, spec);
      const int id = cache.add_sequence();
      cache.reserve(id, length);
      cache.set_length(id, length);
      std::vector<float> row(d);
      for (int t = 0; t < length; ++t)
        for (int h = 0; h < nk; ++h) {
          for (int i = 0; i < r; ++i) row[i] = N(rng);
          cache.write_key(id, 0, h, t, row.data());
          for (int i = 0; i < d; ++i) row[i] = N(rng);
          cache.write_value(id, 0, h, t, row.data());
        }
      std::vector<float> up_t(static_cast<std::size_t>(r) * d), inv_freq, q(nk * G * d);
      for (auto& x : up_t) x = N(rng) / 4;
      for (auto& x : q) x = N(rng);
      for (int i = 0; i < d / 2; ++i) inv_freq.push_back(std::pow(10000.0f, -2.0f * i / d));
      const RopeSteps steps = make_rope_steps(inv_freq, bt);
      const LatentKeys lat{up_t.data(), 1, &steps};
      const std::vector<const LatentKeys*> latents(nk, &lat);
      std::vector<PagedRows> values;
      for (int h = 0; h < nk; ++h) values.push_back(cache.values(id, 0, h));
      auto run = [&](int max_heads) {
        AttentionShape shape;
        shape.head_dim = d;
        shape.max_queries = G;
        shape.max_key_width = r;
        shape.block_tokens = bt;
        shape.scale = 0.125f;
        shape.max_heads = max_heads;
        WorkPool pool(1);
        std::vector<AttentionScratch> scratch;
        scratch.emplace_back(shape);
        std::vector<float> out(nk * G * d, std::nanf(""));
        std::vector<AttentionTask> tasks;
        for (int h = 0; h < nk; ++h)
          tasks.push_back({q.data() + h * G * d, G, cache.keys(id, 0, h), &values[h], 1, begin,
                           length, out.data() + h * G * d});
        run_decode_attention(shape, tasks, latents, pool, scratch);
        return out;
      };
      const std::vector<float> one = run(1), all = run(nk);
      for (std::size_t i = 0; i < one.size(); ++i)
        ASSERT_EQ(one[i], all[i]) << to_string(kt) << " at " << i;
    }
  });
}

TEST(DecodeAttention, LockstepRefusesMismatchedHeadsAndSmallScratch) {
  CacheSpec spec{CacheDType::F32, CacheDType::F32, 8, 16, std::size_t{4} << 20};
  PagedKVCache cache({{2, 8, 2, 8}}, spec);
  const int a = cache.add_sequence(), b = cache.add_sequence();
  for (int id : {a, b}) {
    cache.reserve(id, 20);
    cache.set_length(id, 20);
  }
  std::vector<float> q(8, 0.5f), out(16);
  const PagedRows va = cache.values(a, 0, 0), vb = cache.values(b, 0, 1);
  AttentionShape shape{8, 1, 8, 16, 1.0f, 1};
  shape.max_heads = 2;
  AttentionScratch scratch(shape);
  const AttentionTask ta{q.data(), 1, cache.keys(a, 0, 0), &va, 1, 0, 20, out.data()};
  AttentionTask tb{q.data(), 1, cache.keys(b, 0, 1), &vb, 1, 0, 20, out.data() + 8};
  std::vector<AttentionTask> two{ta, tb};
  EXPECT_THROW(decode_attention_heads(shape, two, {}, scratch), Error);  // other sequence
  tb.keys = cache.keys(a, 0, 1);
  two = {ta, tb};
  two[1].end = 19;
  EXPECT_THROW(decode_attention_heads(shape, two, {}, scratch), Error);  // other tokens
  two[1].end = 20;
  EXPECT_NO_THROW(decode_attention_heads(shape, two, {}, scratch));
  std::vector<AttentionTask> three{ta, two[1], ta};
  EXPECT_THROW(decode_attention_heads(shape, three, {}, scratch), Error);  // scratch of 2
  AttentionShape small = shape;
  small.max_heads = 1;
  std::vector<AttentionScratch> one_head;
  one_head.emplace_back(small);
  WorkPool pool(1);
  EXPECT_THROW(run_decode_attention(shape, two, {}, pool, one_head), Error);
}

}  // namespace
}  // namespace thinkeys
