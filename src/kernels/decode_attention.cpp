// Highway compiles this file once per instruction set (foreach_target.h) and
// picks the best one at run time (HWY_DYNAMIC_DISPATCH).
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kernels/decode_attention.cpp"
// clang-format off
#include <hwy/foreach_target.h>  // must come before highway.h
#include <hwy/highway.h>
#include <hwy/contrib/math/math-inl.h>
// clang-format on

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>

#include "kernels/decode_attention.h"
#include "kernels/quantize.h"

HWY_BEFORE_NAMESPACE();
namespace thinkeys {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;
using DF = hn::ScalableTag<float>;

// Whole vectors over [0, w) and scalar tails, so nothing is written past a
// row's width; the caller zeroes [w, stride) once per row.
void DecodeFloats(const RowFormat& f, const std::byte* src, float* dst) {
  const DF df;
  const int N = static_cast<int>(hn::Lanes(df));
  const int w = f.width;
  int i = 0;
  if (f.dtype == CacheDType::F32) {
    std::memcpy(dst, src, sizeof(float) * w);
  } else if (f.dtype == CacheDType::F16) {
    const hn::Rebind<hwy::float16_t, DF> dh;
    const auto* p = reinterpret_cast<const hwy::float16_t*>(src);
    for (; i + N <= w; i += N) hn::StoreU(hn::PromoteTo(df, hn::LoadU(dh, p + i)), df, dst + i);
    for (; i < w; ++i) {
      uint16_t h;
      std::memcpy(&h, src + 2 * i, 2);
      dst[i] = f16_to_f32(h);
    }
  } else {
    const hn::Rebind<hwy::bfloat16_t, DF> db;
    const auto* p = reinterpret_cast<const hwy::bfloat16_t*>(src);
    for (; i + N <= w; i += N) hn::StoreU(hn::PromoteTo(df, hn::LoadU(db, p + i)), df, dst + i);
    for (; i < w; ++i) {
      uint16_t h;
      std::memcpy(&h, src + 2 * i, 2);
      dst[i] = bf16_to_f32(h);
    }
  }
}

// Integer levels to floats, then one multiply per group by its scale.
void DecodeInts(const RowFormat& f, const std::byte* src, float* dst) {
  const DF df;
  const hn::Rebind<int32_t, DF> di;
  const int N = static_cast<int>(hn::Lanes(df));
  const int w = f.width;
  if (f.dtype == CacheDType::Int8) {
    const hn::Rebind<int8_t, DF> d8;
    const auto* p = reinterpret_cast<const int8_t*>(src);
    int i = 0;
    for (; i + N <= w; i += N)
      hn::StoreU(hn::ConvertTo(df, hn::PromoteTo(di, hn::LoadU(d8, p + i))), df, dst + i);
    for (; i < w; ++i) dst[i] = static_cast<float>(p[i]);
  } else {
    const hn::Rebind<uint8_t, DF> d8;
    const auto* p = reinterpret_cast<const uint8_t*>(src);
    const int half = (w + 1) / 2, hi_count = w - half;
    const auto mask = hn::Set(di, 15), eight = hn::Set(di, 8);
    int i = 0;
    for (; i + N <= hi_count; i += N) {
      const auto b = hn::PromoteTo(di, hn::LoadU(d8, p + i));
      hn::StoreU(hn::ConvertTo(df, hn::Sub(hn::And(b, mask), eight)), df, dst + i);
      hn::StoreU(hn::ConvertTo(df, hn::Sub(hn::ShiftRight<4>(b), eight)), df, dst + half + i);
    }
    for (; i < half; ++i) {
      dst[i] = static_cast<float>(static_cast<int>(p[i] & 15u) - 8);
      if (half + i < w) dst[half + i] = static_cast<float>(static_cast<int>(p[i] >> 4) - 8);
    }
  }
  const std::byte* scales = src + f.scale_offset();
  for (int g = 0; g < f.groups(); ++g) {
    float s;
    std::memcpy(&s, scales + sizeof(float) * g, sizeof(float));
    const auto vs = hn::Set(df, s);
    int i = g * f.group;
    const int e = std::min(w, i + f.group);
    for (; i + N <= e; i += N) hn::StoreU(hn::Mul(hn::LoadU(df, dst + i), vs), df, dst + i);
    for (; i < e; ++i) dst[i] *= s;
  }
}

// n consecutive rows (one block's worth at most) into dst with row stride ld.
void DecodeRows(const RowFormat& f, const std::byte* src, int n, float* dst, int ld) {
  const std::size_t rb = f.bytes();
  const bool ints = is_quantized(f.dtype);
  for (int t = 0; t < n; ++t) {
    float* row = dst + static_cast<std::size_t>(t) * ld;
    if (ints)
      DecodeInts(f, src + rb * t, row);
    else
      DecodeFloats(f, src + rb * t, row);
    std::fill(row + f.width, row + ld, 0.0f);
  }
}

// n is a multiple of kScratchLanes, hence of the lane count.
float Dot(const float* a, const float* b, int n) {
  const DF df;
  const int N = static_cast<int>(hn::Lanes(df));
  auto s0 = hn::Zero(df), s1 = hn::Zero(df);
  int i = 0;
  for (; i + 2 * N <= n; i += 2 * N) {
    s0 = hn::MulAdd(hn::LoadU(df, a + i), hn::LoadU(df, b + i), s0);
    s1 = hn::MulAdd(hn::LoadU(df, a + i + N), hn::LoadU(df, b + i + N), s1);
  }
  for (; i < n; i += N) s0 = hn::MulAdd(hn::LoadU(df, a + i), hn::LoadU(df, b + i), s0);
  return hn::GetLane(hn::SumOfLanes(df, hn::Add(s0, s1)));
}

// acc += p * x over n floats (n a multiple of kScratchLanes).
void Axpy(float p, const float* x, float* acc, int n) {
  const DF df;
  const int N = static_cast<int>(hn::Lanes(df));
  const auto vp = hn::Set(df, p);
  for (int i = 0; i < n; i += N)
    hn::StoreU(hn::MulAdd(vp, hn::LoadU(df, x + i), hn::LoadU(df, acc + i)), df, acc + i);
}

void Scale(float a, float* x, int n) {
  const DF df;
  const int N = static_cast<int>(hn::Lanes(df));
  const auto va = hn::Set(df, a);
  for (int i = 0; i < n; i += N) hn::StoreU(hn::Mul(va, hn::LoadU(df, x + i)), df, x + i);
}

float Max(const float* x, int n) {
  const DF df;
  const int N = static_cast<int>(hn::Lanes(df));
  auto m = hn::Set(df, -std::numeric_limits<float>::infinity());
  for (int i = 0; i < n; i += N) m = hn::Max(m, hn::LoadU(df, x + i));
  return hn::GetLane(hn::MaxOfLanes(df, m));
}

// x = exp(x - m) in place; returns the sum. Padding holds -inf and becomes 0.
float ExpShiftSum(float m, float* x, int n) {
  const DF df;
  const int N = static_cast<int>(hn::Lanes(df));
  const auto vm = hn::Set(df, m);
  auto sum = hn::Zero(df);
  for (int i = 0; i < n; i += N) {
    const auto e = hn::Exp(df, hn::Sub(hn::LoadU(df, x + i), vm));
    hn::StoreU(e, df, x + i);
    sum = hn::Add(sum, e);
  }
  return hn::GetLane(hn::SumOfLanes(df, sum));
}

// k[0, W) = sum_j c_j * P[:, j] for one token: P^T rows are contiguous, so
// this is r scaled adds of W-wide rows.
void Rebuild(const float* c, int r, const float* up_t, int W, float* k) {
  const DF df;
  const int N = static_cast<int>(hn::Lanes(df));
  std::fill(k, k + W, 0.0f);
  for (int j = 0; j < r; ++j) {
    const float* p = up_t + static_cast<std::size_t>(j) * W;
    const auto vc = hn::Set(df, c[j]);
    int i = 0;
    for (; i + N <= W; i += N)
      hn::StoreU(hn::MulAdd(vc, hn::LoadU(df, p + i), hn::LoadU(df, k + i)), df, k + i);
    for (; i < W; ++i) k[i] += c[j] * p[i];
  }
}

void Attend(const AttentionShape& shape, const AttentionTask& task, const LatentKeys* latent,
            AttentionScratch& scratch) {
  const int G = task.n_queries, d = shape.head_dim, BT = task.keys.block_tokens;
  const int r = task.keys.format.width;
  const int qw = latent ? d : r;  // query width
  const int ldq = padded(qw), ldv = padded(d), lds = padded(BT), ldc = padded(r);
  const int share = latent ? latent->share : 1;
  // Latent: query g dots with slice g / (G / share) of the rebuilt key; the
  // stride leaves room for the last slice's padded read.
  const int ldk = latent ? padded((share - 1) * d + ldq) : ldq;
  const int per_value = G / task.n_values;

  float* q = scratch.queries();
  float* acc = scratch.accum();
  float* s = scratch.scores();
  float* kbuf = scratch.keys();
  float* vbuf = scratch.values();
  float* cbuf = scratch.latents();
  float m[kMaxQueries], l[kMaxQueries];
  for (int g = 0; g < G; ++g) {
    for (int i = 0; i < qw; ++i) q[g * ldq + i] = task.q[g * qw + i] * shape.scale;
    std::fill(q + g * ldq + qw, q + (g + 1) * ldq, 0.0f);
    std::fill(acc + g * ldv, acc + (g + 1) * ldv, 0.0f);
    m[g] = -std::numeric_limits<float>::infinity();
    l[g] = 0;
  }

  // Latent RoPE: (cos, sin) of the current token's angles, kept in double and
  // advanced by the step tables.
  const RopeSteps* rope = latent ? latent->rope : nullptr;
  const int half = d / 2;
  double* base_c = scratch.rope();
  double* base_s = base_c + half;
  float* tok_c = reinterpret_cast<float*>(base_s + half);
  float* tok_s = tok_c + half;
  if (rope)
    for (int i = 0; i < half; ++i) {
      const double a = task.begin * rope->inv_freq[i];
      base_c[i] = task.begin ? std::cos(a) : 1.0;
      base_s[i] = task.begin ? std::sin(a) : 0.0;
    }

  for (int t0 = task.begin; t0 < task.end;) {
    const int t1 = std::min(task.end, (t0 / BT + 1) * BT), n = t1 - t0;
    if (latent) {
      const int W = share * d;
      DecodeRows(task.keys.format, task.keys.row(t0), n, cbuf, ldc);
      for (int t = 0; t < n; ++t) {
        float* k = kbuf + static_cast<std::size_t>(t) * ldk;
        Rebuild(cbuf + static_cast<std::size_t>(t) * ldc, r, latent->up_t, W, k);
        std::fill(k + W, k + ldk, 0.0f);
        if (!rope) continue;
        const double* sc = rope->cos.data() + static_cast<std::size_t>(t) * half;
        const double* ss = rope->sin.data() + static_cast<std::size_t>(t) * half;
        for (int i = 0; i < half; ++i) {
          tok_c[i] = static_cast<float>(base_c[i] * sc[i] - base_s[i] * ss[i]);
          tok_s[i] = static_cast<float>(base_s[i] * sc[i] + base_c[i] * ss[i]);
        }
        for (int seg = 0; seg < share; ++seg) {
          float* x1 = k + seg * d;
          float* x2 = x1 + half;
          for (int i = 0; i < half; ++i) {
            const float a = x1[i], b = x2[i];
            x1[i] = a * tok_c[i] - b * tok_s[i];
            x2[i] = b * tok_c[i] + a * tok_s[i];
          }
        }
      }
      if (rope) {
        const double* sc = rope->cos.data() + static_cast<std::size_t>(n) * half;
        const double* ss = rope->sin.data() + static_cast<std::size_t>(n) * half;
        for (int i = 0; i < half; ++i) {
          const double c = base_c[i] * sc[i] - base_s[i] * ss[i];
          base_s[i] = base_s[i] * sc[i] + base_c[i] * ss[i];
          base_c[i] = c;
        }
      }
    } else {
      DecodeRows(task.keys.format, task.keys.row(t0), n, kbuf, ldk);
    }

    for (int g = 0; g < G; ++g) {
      float* sg = s + g * lds;
      const float* qg = q + g * ldq;
      const int off = latent ? (g / (G / share)) * d : 0;
      for (int t = 0; t < n; ++t)
        sg[t] = Dot(qg, kbuf + static_cast<std::size_t>(t) * ldk + off, ldq);
      std::fill(sg + n, sg + lds, -std::numeric_limits<float>::infinity());
      const float m_new = std::max(m[g], Max(sg, lds));
      if (m_new > m[g]) {
        const float alpha = std::exp(m[g] - m_new);  // 0 on the first block
        l[g] *= alpha;
        Scale(alpha, acc + g * ldv, ldv);
        m[g] = m_new;
      }
      l[g] += ExpShiftSum(m[g], sg, lds);
    }

    for (int vh = 0; vh < task.n_values; ++vh) {
      const PagedRows& V = task.values[vh];
      DecodeRows(V.format, V.row(t0), n, vbuf, ldv);
      for (int t = 0; t < n; ++t) {
        const float* vt = vbuf + static_cast<std::size_t>(t) * ldv;
        for (int g = vh * per_value; g < (vh + 1) * per_value; ++g)
          Axpy(s[g * lds + t], vt, acc + g * ldv, ldv);
      }
    }
    t0 = t1;
  }

  for (int g = 0; g < G; ++g) {
    const float inv = l[g] > 0 ? 1.0f / l[g] : 0.0f;
    for (int i = 0; i < d; ++i) task.out[g * d + i] = acc[g * ldv + i] * inv;
  }
}

const char* TargetName() { return hwy::TargetName(HWY_TARGET); }

}  // namespace HWY_NAMESPACE
}  // namespace thinkeys
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
#include <cstdlib>
#include <string>

#include "util/error.h"
#include "util/work_pool.h"

namespace thinkeys {

HWY_EXPORT(Attend);
HWY_EXPORT(TargetName);

void AttentionScratch::Free::operator()(void* p) const { std::free(p); }

AttentionScratch::Buffer AttentionScratch::alloc(std::size_t floats) {
  const std::size_t bytes = (std::max<std::size_t>(floats, 1) * sizeof(float) + 63) / 64 * 64;
  void* p = std::aligned_alloc(64, bytes);
  if (!p) throw Error("cannot allocate attention scratch");
  std::memset(p, 0, bytes);
  return Buffer(static_cast<float*>(p));
}

AttentionScratch::AttentionScratch(const AttentionShape& sh) {
  if (sh.max_queries < 1 || sh.max_queries > kMaxQueries)
    throw Error("decode attention supports 1 to " + std::to_string(kMaxQueries) +
                " query heads per key head, not " + std::to_string(sh.max_queries));
  const std::size_t G = sh.max_queries, BT = sh.block_tokens, d = sh.head_dim;
  const std::size_t qw = padded(std::max(sh.max_key_width, sh.head_dim));
  const std::size_t kw = padded((sh.max_share - 1) * sh.head_dim + static_cast<int>(qw));
  q_ = alloc(G * qw);
  k_ = alloc(BT * std::max(kw, qw));
  c_ = alloc(BT * padded(sh.max_key_width));
  v_ = alloc(BT * padded(sh.head_dim));
  s_ = alloc(G * padded(sh.block_tokens));
  acc_ = alloc(G * padded(sh.head_dim));
  // base (cos, sin) in double, then the current token's (cos, sin) in float.
  const std::size_t rope_bytes = d * sizeof(double) + d * sizeof(float);
  void* p = std::aligned_alloc(64, (rope_bytes + 63) / 64 * 64 + 64);
  if (!p) throw Error("cannot allocate attention scratch");
  rope_.reset(static_cast<double*>(p));
}

RopeSteps make_rope_steps(std::span<const float> inv_freq, int block_tokens) {
  RopeSteps r;
  r.half = static_cast<int>(inv_freq.size());
  r.block_tokens = block_tokens;
  r.inv_freq.assign(inv_freq.begin(), inv_freq.end());
  for (int t = 0; t <= block_tokens; ++t)
    for (int i = 0; i < r.half; ++i) {
      r.cos.push_back(std::cos(t * r.inv_freq[i]));
      r.sin.push_back(std::sin(t * r.inv_freq[i]));
    }
  return r;
}

void decode_attention(const AttentionShape& shape, const AttentionTask& task,
                      const LatentKeys* latent, AttentionScratch& scratch) {
  if (task.n_queries < 1 || task.n_queries > shape.max_queries || task.n_values < 1 ||
      task.n_queries % task.n_values != 0)
    throw Error("decode attention: bad query/value head grouping");
  if (latent && (latent->share != task.n_values || task.keys.format.width > shape.max_key_width))
    throw Error("decode attention: latent keys must rebuild one slice per value head");
  if (task.keys.block_tokens != shape.block_tokens || task.begin < 0 || task.end < task.begin)
    throw Error("decode attention: task does not match the cache layout");
  HWY_DYNAMIC_DISPATCH(Attend)(shape, task, latent, scratch);
}

void run_decode_attention(const AttentionShape& shape, std::span<const AttentionTask> tasks,
                          std::span<const LatentKeys* const> latents, WorkPool& pool,
                          std::span<AttentionScratch> scratch) {
  if (static_cast<int>(scratch.size()) < pool.threads())
    throw Error("decode attention needs one scratch per thread");
  pool.run(static_cast<int>(tasks.size()), [&](int i, int thread) {
    decode_attention(shape, tasks[i], latents.empty() ? nullptr : latents[i], scratch[thread]);
  });
}

const char* decode_attention_target() { return HWY_DYNAMIC_DISPATCH(TargetName)(); }

}  // namespace thinkeys
#endif  // HWY_ONCE
