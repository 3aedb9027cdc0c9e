#include "model/layer_ops.h"

#include <ATen/Parallel.h>

#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include "kernels/row_ops.h"
#include "kernels/small_gemm.h"
#include "kernels/weight_tiles.h"
#include "model/weight_format.h"
#include "util/error.h"
#include "util/threads.h"
#include "util/work_pool.h"

// libgomp, loaded with libtorch; weak so a libtorch built without OpenMP
// still links (its at::mm then has no OpenMP threads to narrow).
extern "C" void omp_set_num_threads(int) __attribute__((weak));
// oneDNN's row-major C = alpha op(A) op(B) + beta C with bf16 A and B and f32
// C (libdnnl, which libtorch loads; declared here because Debian's libtorch
// package does not bring its header). Returns dnnl_status_t, 0 on success.
extern "C" int dnnl_gemm_bf16bf16f32(char transa, char transb, int64_t m, int64_t n, int64_t k,
                                     float alpha, const uint16_t* a, int64_t lda, const uint16_t* b,
                                     int64_t ldb, float beta, float* c, int64_t ldc)
    __attribute__((weak));
// The same for f32 A, B and C.
extern "C" int dnnl_sgemm(char transa, char transb, int64_t m, int64_t n, int64_t k, float alpha,
                          const float* a, int64_t lda, const float* b, int64_t ldb, float beta,
                          float* c, int64_t ldc) __attribute__((weak));

namespace thinkeys {
namespace {

// Output features per work item: large enough that a thread streams a few
// hundred KiB of weights per item, small enough to split 768-wide layers.
constexpr int kGemmChunk = 64;

// Output features per converted tile of a many-row product: 256 rows of a
// 4096-wide matrix are 4 MiB of f32, and a tile is a GEMM big enough for
// OpenBLAS to run at its full rate.
constexpr int kTileFeatures = 256;

bool plain(const at::Tensor& t) {
  return t.device().is_cpu() && t.scalar_type() == at::kFloat && !t.requires_grad();
}

bool stored_weights(const at::Tensor& w) {
  const auto st = w.scalar_type();
  return st == at::kBFloat16 || st == at::kHalf || packed_tensor(w);
}

// Rows per work item of the element-wise prefill loops below.
constexpr int kRowChunk = 16;

// Many f32 rows without autograd (prefill): libtorch runs element-wise ops on
// one thread here (model/engine_threads.h), so norms and activations split
// their rows over the compute pool instead.
bool many_plain_rows(const at::Tensor& x) {
  return plain(x) && x.dim() == 2 && x.size(0) > kSmallGemmMaxRows && x.is_contiguous();
}

template <class F>
void for_row_chunks(int64_t rows, F&& f) {
  const int chunks = static_cast<int>((rows + kRowChunk - 1) / kRowChunk);
  compute_pool()->run(chunks, [&](int c, int) {
    const int64_t r0 = int64_t{c} * kRowChunk;
    for (int64_t r = r0; r < std::min(rows, r0 + kRowChunk); ++r) f(r);
  });
}

bool small_gemm_applies(const at::Tensor& x, const at::Tensor& w, const at::Tensor& b) {
  auto plain_w = [](const at::Tensor& t) {
    return t.device().is_cpu() && !t.requires_grad() &&
           (t.scalar_type() == at::kFloat || stored_weights(t));
  };
  return x.dim() == 2 && x.size(0) >= 1 && x.size(0) <= kSmallGemmMaxRows && w.dim() == 2 &&
         x.size(1) == w.size(1) && plain(x) && plain_w(w) &&
         (w.is_contiguous() || packed_tensor(w)) &&
         (!b.defined() || (b.dim() == 1 && b.size(0) == w.size(0) && plain(b)));
}

at::Tensor small_project(const at::Tensor& x_in, const at::Tensor& w, const at::Tensor& b_in,
                         const at::Tensor& scales) {
  const at::Tensor x = x_in.contiguous(), b = b_in.defined() ? b_in.contiguous() : b_in;
  const int rows = static_cast<int>(x.size(0)), out = static_cast<int>(w.size(0));
  const int in = static_cast<int>(w.size(1));
  at::Tensor y = at::empty({rows, out}, x.options());
  const WeightRows wr = weight_rows(w, scales);
  const float* xp = x.data_ptr<float>();
  const float* bp = b.defined() ? b.data_ptr<float>() : nullptr;
  float* yp = y.data_ptr<float>();
  // int8 weights: the rows are quantized once here, not once per chunk.
  Int16RowBuffer buffer;
  const GemmRows xr = prepare_gemm_rows(wr, in, xp, in, rows, buffer);
  auto run = [&](int o0, int o1) { small_gemm(wr, in, xr, rows, bp, yp, out, o0, o1); };
  // libtorch's own pool is pinned to one thread (util/threads.h), so without
  // the shared pool this would run on one core.
  const int chunks = (out + kGemmChunk - 1) / kGemmChunk;
  compute_pool()->run(
      chunks, [&](int c, int) { run(c * kGemmChunk, std::min(out, (c + 1) * kGemmChunk)); });
  return y;
}

// Output features per bf16 product of a many-row projection: bounds the
// bf16 result tile (and an int8 matrix's converted tile) a thread holds.
constexpr int kBf16TileFeatures = 512;

// libtorch runs oneDNN's bf16 GEMM on OpenMP; each compute-pool thread runs
// its own share on one OpenMP thread so the two pools do not contend.
void one_openmp_thread() {
  thread_local bool done = false;
  if (done) return;
  // Settle ATen's per-thread lazy init first (it would later reset this
  // thread's OpenMP count to the process default), then narrow only this
  // thread. at::set_num_threads(1) here would also change the process-wide
  // default every thread created afterwards starts with (training,
  // calibration, another library user).
  at::internal::lazy_init_num_threads();
  if (omp_set_num_threads != nullptr) omp_set_num_threads(1);
  done = true;
}

// oneDNN multiplies bf16 at 2-3x sgemm's rate only where the CPU has
// AVX512-BF16; elsewhere at::mm falls back to a generic bf16 loop far slower
// than converting tiles to f32 for sgemm, so those CPUs keep the f32 tiles.
bool native_bf16_gemm() {
  static const bool yes = __builtin_cpu_supports("avx512bf16");
  return yes;
}

// Runs fn(o0, n) for tiles [o0, o0 + n) of `out` output features on the
// compute pool, each thread's GEMM on one OpenMP thread. A multiple of the
// thread count of equal tiles keeps the threads level.
// Tiles start on multiples of `align` (packed int8 weights convert whole
// blocks of 16 rows).
template <class F>
void for_feature_tiles(WorkPool& pool, int64_t out, F&& fn, int64_t align = 1) {
  const int64_t threads = pool.threads();
  const int64_t per_thread =
      (out + threads * kBf16TileFeatures - 1) / (threads * kBf16TileFeatures);
  const int64_t tiles = threads * per_thread;
  const int64_t tile = ((out + tiles - 1) / tiles + align - 1) / align * align;
  pool.run(static_cast<int>(tiles), [&](int t, int) {
    one_openmp_thread();
    const int64_t o0 = std::min(out, t * tile), n = std::min(tile, out - o0);
    if (n > 0) fn(o0, n);
  });
}

// y[r, o0 + j] += b[o0 + j] for a tile's columns (no-op without a bias).
void add_bias(const float* b, int64_t rows, int64_t o0, int64_t n, float* y, int64_t ldy) {
  if (!b) return;
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t j = 0; j < n; ++j) y[r * ldy + o0 + j] += b[o0 + j];
}

// y[:, o0, o0 + n) = x w^T + b for bf16 rows x [rows, in] and the tile's n
// bf16 weight rows (trans_w 'T': [n, ldw] as stored; 'N': transposed,
// [in, ldw]), by oneDNN's bf16 GEMM (present: dnnl_gemm_bf16bf16f32).
void bf16_tile_product(const uint16_t* x, int64_t rows, int64_t in, const uint16_t* w, char trans_w,
                       int64_t ldw, int64_t o0, int64_t n, const float* b, float* y, int64_t ldy) {
  const int status =
      dnnl_gemm_bf16bf16f32('N', trans_w, rows, n, in, 1.0f, x, in, w, ldw, 0.0f, y + o0, ldy);
  if (status != 0) throw Error("oneDNN bf16 GEMM failed (status " + std::to_string(status) + ")");
  add_bias(b, rows, o0, n, y, ldy);
}

// Many f32 rows by an f32 matrix, without autograd (prefill): oneDNN's sgemm
// on tiles of output features on the compute pool, like the bf16 product, so
// that prefill never wakes OpenBLAS's own threads, which then spin for the
// cores while the pool runs attention and the element-wise work.
bool f32_tiles_apply(const at::Tensor& x, const at::Tensor& w, const at::Tensor& b) {
  return dnnl_sgemm != nullptr && many_plain_rows(x) && plain(w) && w.dim() == 2 &&
         w.is_contiguous() && x.size(1) == w.size(1) &&
         (!b.defined() || (plain(b) && b.dim() == 1 && b.size(0) == w.size(0)));
}

at::Tensor f32_project(const at::Tensor& x, const at::Tensor& w, const at::Tensor& b) {
  const int64_t out = w.size(0), in = w.size(1), rows = x.size(0);
  at::Tensor y = at::empty({rows, out}, at::kFloat);
  const float* xp = x.data_ptr<float>();
  const float* wp = w.data_ptr<float>();
  const at::Tensor bc = b.defined() ? b.contiguous() : b;
  const float* bp = bc.defined() ? bc.data_ptr<float>() : nullptr;
  float* yp = y.data_ptr<float>();
  for_feature_tiles(*compute_pool(), out, [&](int64_t o0, int64_t n) {
    const int status =
        dnnl_sgemm('N', 'T', rows, n, in, 1.0f, xp, in, wp + o0 * in, in, 0.0f, yp + o0, out);
    if (status != 0) throw Error("oneDNN sgemm failed (status " + std::to_string(status) + ")");
    add_bias(bp, rows, o0, n, yp, out);
  });
  return y;
}

// Many rows (prefill) by a bf16 or int8 matrix: the rows are rounded to bf16
// once and multiplied in bf16 with f32 accumulation (oneDNN's AVX512-BF16
// kernels: 2-3x sgemm's rate on this machine, where converting tiles to f32
// for sgemm made 16-bit prefill slower than f32). int8 tiles are widened to
// bf16 first (the level exactly, level x scale rounded once). oneDNN's bf16
// GEMM writes f32 outputs straight into y; without it (a libtorch built
// without oneDNN) at::mm rounds each output to bf16. The error bound is in
// tests/test_weight_formats.cpp.
at::Tensor bf16_project(const at::Tensor& x2, const at::Tensor& w, const at::Tensor& b,
                        const at::Tensor& scales) {
  const int64_t out = w.size(0), in = w.size(1), rows = x2.size(0);
  const at::Tensor xc = x2.contiguous();
  const at::Tensor xb = at::empty({rows, in}, at::kBFloat16);
  {
    const float* src = xc.data_ptr<float>();
    auto* dst = static_cast<uint16_t*>(xb.data_ptr());
    for_row_chunks(rows, [&](int64_t r) { f32_to_bf16_bits(src + r * in, in, dst + r * in); });
  }
  at::Tensor y = at::empty({rows, out}, at::kFloat);
  const bool stored_bf16 = w.scalar_type() == at::kBFloat16 && w.is_contiguous();
  const WeightRows wr = weight_rows(w, scales);
  const auto* xp = static_cast<const uint16_t*>(xb.data_ptr());
  float* yp = y.data_ptr<float>();
  const at::Tensor bc = b.defined() ? b.contiguous() : b;
  const float* bp = bc.defined() ? bc.data_ptr<float>() : nullptr;
  const bool packed = packed_weights(wr.type);
  for_feature_tiles(
      *compute_pool(), out,
      [&](int64_t o0, int64_t n) {
        // bf16 weights are multiplied in place; int8 and int4 ones widened to
        // a bf16 tile, transposed (packed_rows_to_bf16_transposed says why).
        const uint16_t* wt;
        thread_local std::vector<uint16_t> converted;
        char trans_w = 'T';
        int64_t ldw = in;
        if (stored_bf16) {
          wt = static_cast<const uint16_t*>(w.data_ptr()) + o0 * in;
        } else if (packed) {
          converted.resize(static_cast<std::size_t>(n * in));
          packed_rows_to_bf16_transposed(wr, static_cast<int>(in), static_cast<int>(o0),
                                         static_cast<int>(o0 + n), converted.data(),
                                         static_cast<std::size_t>(n));
          wt = converted.data();
          trans_w = 'N';
          ldw = n;
        } else {
          converted.resize(static_cast<std::size_t>(n * in));
          weight_rows_to_bf16(wr, static_cast<int>(in), static_cast<int>(o0),
                              static_cast<int>(o0 + n), converted.data());
          wt = converted.data();
        }
        if (dnnl_gemm_bf16bf16f32 != nullptr)
          return bf16_tile_product(xp, rows, in, wt, trans_w, ldw, o0, n, bp, yp, out);
        const at::Tensor wtile =
            trans_w == 'T' ? at::from_blob(const_cast<uint16_t*>(wt), {n, in}, at::kBFloat16).t()
                           : at::from_blob(const_cast<uint16_t*>(wt), {in, n}, at::kBFloat16);
        at::Tensor part = y.narrow(1, o0, n);
        part.copy_(at::mm(xb, wtile));
        if (b.defined()) part.add_(b.narrow(0, o0, n));
      },
      packed ? kInt8BlockRows : 1);
  return y;
}

// Many rows by an f16 matrix (or a bf16/int8 one where the CPU has no native
// bf16 GEMM): each tile of output features is converted to
// f32 on the compute pool and multiplied by BLAS, so no more than one tile of
// f32 weights exists at a time.
at::Tensor tiled_project(const at::Tensor& x_in, const at::Tensor& w, const at::Tensor& b,
                         const at::Tensor& scales) {
  if (x_in.requires_grad())
    throw Error("weights held as " + std::string(c10::toString(w.scalar_type())) +
                " cannot be trained; load the model with f32 weights");
  const at::Tensor x = x_in.to(at::kFloat).contiguous();
  const int64_t out = w.size(0), in = w.size(1);
  const int64_t lead = x.numel() / std::max<int64_t>(in, 1);
  const at::Tensor x2 = x.view({lead, in});
  std::vector<int64_t> shape = x.sizes().vec();
  shape.back() = out;
  if (w.scalar_type() != at::kHalf && native_bf16_gemm())
    return bf16_project(x2, w, b, scales).view(shape);
  const WeightRows wr = weight_rows(w, scales);
  if (dnnl_sgemm != nullptr) {
    // Each pool thread converts its own tiles and multiplies them by oneDNN's
    // sgemm, as the f32 product does, so OpenBLAS's threads stay asleep.
    at::Tensor y = at::empty({lead, out}, x.options());
    const float* xp = x2.data_ptr<float>();
    float* yp = y.data_ptr<float>();
    const at::Tensor bc = b.defined() ? b.contiguous() : b;
    const float* bp = bc.defined() ? bc.data_ptr<float>() : nullptr;
    for_feature_tiles(*compute_pool(), out, [&](int64_t o0, int64_t n) {
      thread_local std::vector<float> tile;
      tile.resize(static_cast<std::size_t>(n * in));
      weight_rows_to_f32(wr, static_cast<int>(in), static_cast<int>(o0), static_cast<int>(o0 + n),
                         tile.data());
      const int status =
          dnnl_sgemm('N', 'T', lead, n, in, 1.0f, xp, in, tile.data(), in, 0.0f, yp + o0, out);
      if (status != 0) throw Error("oneDNN sgemm failed (status " + std::to_string(status) + ")");
      add_bias(bp, lead, o0, n, yp, out);
    });
    return y.view(shape);
  }
  at::Tensor y = at::empty({lead, out}, x.options());
  const int64_t tile_rows = std::min<int64_t>(out, kTileFeatures);
  at::Tensor tile = at::empty({tile_rows, in}, at::kFloat);
  const int parts = project_threads();
  for (int64_t o0 = 0; o0 < out; o0 += kTileFeatures) {
    const int64_t n = std::min<int64_t>(kTileFeatures, out - o0);
    float* tp = tile.data_ptr<float>();
    const int64_t per = (n + parts - 1) / parts;
    compute_pool()->run(parts, [&](int p, int) {
      const int64_t a = std::min(n, p * per), e = std::min(n, a + per);
      if (a < e)
        weight_rows_to_f32(wr, static_cast<int>(in), static_cast<int>(o0 + a),
                           static_cast<int>(o0 + e), tp + a * in);
    });
    at::Tensor part = y.narrow(1, o0, n);
    const at::Tensor t = tile.narrow(0, 0, n);
    if (b.defined())
      at::addmm_out(part, b.narrow(0, o0, n), x2, t.t());
    else
      at::mm_out(part, x2, t.t());
  }
  return y.view(shape);
}

}  // namespace

int project_threads() { return compute_pool()->threads(); }

bool bf16_gemm_rows(WorkPool& pool, const WeightRows& w, int in, int out, const float* x, int rows,
                    const float* bias, float* y, std::vector<uint16_t>& x_bf16) {
  if (w.type != WeightType::BF16 || rows <= kSmallGemmMaxRows || !native_bf16_gemm() ||
      dnnl_gemm_bf16bf16f32 == nullptr)
    return false;
  const std::size_t n = static_cast<std::size_t>(rows) * in;
  if (x_bf16.size() < n) x_bf16.resize(n);
  uint16_t* xb = x_bf16.data();
  pool.run((rows + kRowChunk - 1) / kRowChunk, [&](int c, int) {
    for (int r = c * kRowChunk; r < std::min(rows, (c + 1) * kRowChunk); ++r)
      f32_to_bf16_bits(x + static_cast<std::size_t>(r) * in, in,
                       xb + static_cast<std::size_t>(r) * in);
  });
  const auto* wp = static_cast<const uint16_t*>(w.data);
  for_feature_tiles(pool, out, [&](int64_t o0, int64_t nf) {
    bf16_tile_product(xb, rows, in, wp + o0 * static_cast<int64_t>(w.ld), 'T',
                      static_cast<int64_t>(w.ld), o0, nf, bias, y, out);
  });
  return true;
}

at::Tensor project(const at::Tensor& x, const at::Tensor& w, const at::Tensor& b,
                   const at::Tensor& w_scales) {
  if (small_gemm_applies(x, w, b)) return small_project(x, w, b, w_scales);
  if (stored_weights(w)) return tiled_project(x, w, b, w_scales);
  if (f32_tiles_apply(x, w, b)) return f32_project(x, w, b);
  if (x.size(0) == 1) {
    at::Tensor row = x.select(0, 0);
    return (b.defined() ? at::addmv(b, w, row) : at::mv(w, row)).unsqueeze(0);
  }
  return b.defined() ? at::linear(x, w, b) : at::linear(x, w);
}

at::Tensor embed(const at::Tensor& table, const at::Tensor& scales, const at::Tensor& ids) {
  if (table.scalar_type() == at::kFloat) return table.index_select(0, ids);
  const at::Tensor idx = ids.to(at::kLong).contiguous();
  const int64_t n = idx.numel(), D = table.size(1), V = table.size(0);
  at::Tensor out = at::empty({n, D}, at::kFloat);
  const WeightRows wr = weight_rows(table, scales);
  const int64_t* ip = idx.data_ptr<int64_t>();
  for (int64_t i = 0; i < n; ++i) {
    if (ip[i] < 0 || ip[i] >= V)
      throw Error("token id " + std::to_string(ip[i]) + " outside the vocabulary (" +
                  std::to_string(V) + ")");
    weight_rows_to_f32(wr, static_cast<int>(D), static_cast<int>(ip[i]),
                       static_cast<int>(ip[i]) + 1, out.data_ptr<float>() + i * D);
  }
  return out;
}

at::Tensor normalize(const ModelConfig& c, const at::Tensor& x, const at::Tensor& w,
                     const at::Tensor& b) {
  if (many_plain_rows(x) && plain(w) && w.is_contiguous() && w.numel() == x.size(1) &&
      (!b.defined() || (plain(b) && b.is_contiguous() && b.numel() == x.size(1)))) {
    at::Tensor y = at::empty_like(x);
    const int n = static_cast<int>(x.size(1));
    const float* xp = x.data_ptr<float>();
    const float* wp = w.data_ptr<float>();
    const float* bp = b.defined() ? b.data_ptr<float>() : nullptr;
    float* yp = y.data_ptr<float>();
    const float eps = static_cast<float>(c.norm_eps);
    const bool layer = c.norm == NormKind::LayerNorm;
    for_row_chunks(x.size(0), [&](int64_t r) {
      if (layer)
        layer_norm_row(xp + r * n, wp, bp, n, eps, yp + r * n);
      else
        rms_norm_row(xp + r * n, wp, n, eps, yp + r * n);
    });
    return y;
  }
  if (c.norm == NormKind::LayerNorm) return at::layer_norm(x, {x.size(-1)}, w, b, c.norm_eps);
  return x * at::rsqrt(x.pow(2).mean(-1, /*keepdim=*/true) + c.norm_eps) * w;
}

at::Tensor rotate(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin) {
  const int64_t half = x.size(-1) / 2;
  // Prefill rows [N, heads, width] with tables [N, 1, >= half]: each row is
  // copied and turned in place on the compute pool (same products and sums
  // as below, so the same values), not six libtorch passes on one thread.
  if (plain(x) && x.dim() == 3 && x.size(0) > kSmallGemmMaxRows && x.size(-1) % 2 == 0 &&
      x.stride(2) == 1 && x.stride(1) == x.size(2) && plain(cos) && plain(sin) && cos.dim() == 3 &&
      sin.dim() == 3 && cos.size(0) == x.size(0) && cos.size(1) == 1 && cos.size(2) >= half &&
      cos.stride(2) == 1 && sin.sizes() == cos.sizes() && sin.strides() == cos.strides()) {
    const int64_t heads = x.size(1), width = x.size(2), row = heads * width;
    at::Tensor y = at::empty(x.sizes(), x.options());
    const float* xp = x.data_ptr<float>();
    const float* cp = cos.data_ptr<float>();
    const float* sp = sin.data_ptr<float>();
    float* yp = y.data_ptr<float>();
    for_row_chunks(x.size(0), [&](int64_t r) {
      std::copy(xp + r * x.stride(0), xp + r * x.stride(0) + row, yp + r * row);
      rope_rotate_half(yp + r * row, static_cast<int>(heads), static_cast<int>(width),
                       static_cast<std::size_t>(width), cp + r * cos.stride(0),
                       sp + r * sin.stride(0));
    });
    return y;
  }
  at::Tensor x1 = x.narrow(-1, 0, half), x2 = x.narrow(-1, half, half);
  at::Tensor c = cos.narrow(-1, 0, half), s = sin.narrow(-1, 0, half);
  return at::cat({x1 * c - x2 * s, x2 * c + x1 * s}, -1);
}

at::Tensor feed_forward(const ModelConfig& c, const LayerWeights& L, const at::Tensor& h) {
  at::Tensor m;
  if (c.mlp == MlpKind::SwiGLU) {
    at::Tensor gu = project(h, L.w_gate_up, L.b_gate_up, L.w_gate_up_scales);
    const int64_t f = c.hidden_dim;
    if (many_plain_rows(gu)) {
      m = at::empty({gu.size(0), f}, gu.options());
      const float* g = gu.data_ptr<float>();
      float* mp = m.data_ptr<float>();
      for_row_chunks(gu.size(0), [&](int64_t r) {
        silu_mul(g + r * 2 * f, g + r * 2 * f + f, static_cast<int>(f), mp + r * f);
      });
    } else {
      m = at::silu(gu.narrow(1, 0, f)) * gu.narrow(1, f, f);
    }
  } else {
    m = project(h, L.w_up, L.b_up, L.w_up_scales);
    if (many_plain_rows(m)) {
      at::Tensor a = at::empty_like(m);
      const int64_t f = m.size(1);
      const float* mp = m.data_ptr<float>();
      float* ap = a.data_ptr<float>();
      for_row_chunks(m.size(0),
                     [&](int64_t r) { gelu_tanh(mp + r * f, static_cast<int>(f), ap + r * f); });
      m = a;
    } else {
      m = at::gelu(m, "tanh");
    }
  }
  return project(m, L.w_down, L.b_down, L.w_down_scales);
}

}  // namespace thinkeys
