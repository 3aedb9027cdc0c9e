// Weights held as bf16, f16, int8 or int4 (model/weight_format.h).
//
// Tolerances. Kernels widen every stored weight to f32 exactly (bf16 and f16
// are subsets of f32; an int8 level times its f32 scale is one f32 product,
// rounded once), so against a double-precision sum of the same widened values
// the only error is f32 accumulation: at most (n + 2) * 2^-24 * sum |w x| for
// n terms (recursive summation's bound, with the product and the scale
// rounding). The whole-model test compares a 16-bit model with the f32 model
// holding the same rounded values, so it sees only that accumulation order
// too (1e-4 of the logits' range, as test_batch_decoder uses for f32 paths).
// Int8 quantization itself is checked element by element: within half a
// step (scale / 2) of the original, scale = max |w| of the group / 127; int4
// group by group against plain rounding's squared error.
//
// Many rows (prefill) by bf16 or int8 weights multiply in bf16 (layer_ops:
// bf16_project): each input is rounded to bf16 (relative error <= 2^-9), an
// int8 weight's f32 value too (<= 2^-9; bf16 weights are exact), the products
// are summed in f32 ((n + 2) 2^-24 of sum |w x|, times 1 + 2^-8 for the
// perturbed terms) and the sum is rounded to bf16 (<= 2^-9 of |sum| <=
// (1 + 2^-7) sum |w x|). So |got - want| <= u sum |w x| with
// u = p + 2^-9 (1 + 2^-7) + 1.01 (n + 2) 2^-24, p = 2^-9 (bf16) or
// 2^-8 + 2^-18 (int8: both factors perturbed).
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <gtest/gtest.h>
#include <hwy/targets.h>
#include <unistd.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <random>
#include <thread>
#include <vector>

#include "checkpoint/hf_checkpoint.h"
#include "checkpoint/model_loader.h"
#include "kernels/packed_gemm.h"
#include "kernels/small_gemm.h"
#include "kernels/weight_rows.h"
#include "kernels/weight_tiles.h"
#include "model/engine_threads.h"
#include "model/kv_cache.h"
#include "model/layer_ops.h"
#include "model/random_init.h"
#include "model/transformer.h"
#include "model/weight_format.h"
#include "runtime/batch_decoder.h"
#include "runtime/logits_tensor.h"
#include "util/error.h"

namespace thinkeys {
namespace {

// Row-major int8 levels and scales of an f32 matrix, by the reference
// quantizer (checked by hand below), and the f32 values they stand for,
// widened by libtorch: independent of the packed layout the kernels read.
at::Tensor int8_values(const at::Tensor& f) {
  const int rows = static_cast<int>(f.size(0)), cols = static_cast<int>(f.size(1));
  at::Tensor q = at::empty({rows, cols}, at::kChar);
  at::Tensor s = at::empty({rows, weight_groups(cols)}, at::kFloat);
  const at::Tensor c = f.to(at::kFloat).contiguous();
  quantize_int8_rows(c.data_ptr<float>(), cols, rows, cols, q.data_ptr<int8_t>(), cols,
                     s.data_ptr<float>(), s.size(1));
  return q.to(at::kFloat) * s.repeat_interleave(kWeightGroup, 1).narrow(1, 0, cols);
}

// The same by the reference int4 quantizer.
at::Tensor int4_values(const at::Tensor& f) {
  const int rows = static_cast<int>(f.size(0)), cols = static_cast<int>(f.size(1));
  const int groups = (cols + kInt4Group - 1) / kInt4Group;
  at::Tensor q = at::empty({rows, cols}, at::kChar);
  at::Tensor s = at::empty({rows, groups}, at::kFloat);
  const at::Tensor c = f.to(at::kFloat).contiguous();
  quantize_int4_rows(c.data_ptr<float>(), cols, rows, cols, q.data_ptr<int8_t>(), cols,
                     s.data_ptr<float>(), groups);
  return q.to(at::kFloat) * s.repeat_interleave(kInt4Group, 1).narrow(1, 0, cols);
}

// |got - want| <= (n + 2) 2^-24 sum |w x| elementwise, want in double.
void expect_within_accumulation(const at::Tensor& got, const at::Tensor& x, const at::Tensor& wf,
                                const std::string& what) {
  const at::Tensor xd = x.to(at::kDouble), wd = wf.to(at::kDouble);
  const at::Tensor want = at::mm(xd, wd.t());
  const at::Tensor mag = at::mm(xd.abs(), wd.abs().t());
  const double u = std::ldexp(1.0, -24) * (static_cast<double>(x.size(1)) + 2);
  const at::Tensor excess = (got.to(at::kDouble) - want).abs() - (u * mag + 1e-30);
  EXPECT_LE(excess.max().item<double>(), 0.0) << what;
}

// The bf16 product's bound (header) for many rows by bf16, int8 or int4
// weights (an int4 weight's f32 value is rounded once, as an int8 one's).
void expect_within_bf16_product(const at::Tensor& got, const at::Tensor& x, const at::Tensor& wf,
                                WeightType type, const std::string& what) {
  const at::Tensor xd = x.to(at::kDouble), wd = wf.to(at::kDouble);
  const at::Tensor want = at::mm(xd, wd.t());
  const at::Tensor mag = at::mm(xd.abs(), wd.abs().t());
  const double n = static_cast<double>(x.size(1));
  const double p =
      packed_weights(type) ? std::ldexp(1.0, -8) + std::ldexp(1.0, -18) : std::ldexp(1.0, -9);
  const double u =
      p + std::ldexp(1.0, -9) * (1 + std::ldexp(1.0, -7)) + 1.01 * (n + 2) * std::ldexp(1.0, -24);
  const at::Tensor excess = (got.to(at::kDouble) - want).abs() - (u * mag + 1e-30);
  EXPECT_LE(excess.max().item<double>(), 0.0) << what;
  // The bound is not vacuous: the error is far below the product's scale.
  EXPECT_GT((want.abs() - 4 * u * mag).max().item<double>(), 0.0) << what;
}

// A matrix in `type` with its scales (packed int8) from random f32 values,
// and the f32 values it stands for, computed with libtorch's conversions.
struct Stored {
  at::Tensor w, s, values;
};
Stored stored(const at::Tensor& f, WeightType type) {
  switch (type) {
    case WeightType::BF16:
      return {f.to(at::kBFloat16), {}, f.to(at::kBFloat16).to(at::kFloat)};
    case WeightType::F16:
      return {f.to(at::kHalf), {}, f.to(at::kHalf).to(at::kFloat)};
    case WeightType::Int8: {
      auto [w, s] = quantize_int8(f);
      return {w, s, int8_values(f)};
    }
    case WeightType::Int4: {
      auto [w, s] = quantize_int4(f);
      return {w, s, int4_values(f)};
    }
    default:
      return {f, {}, f};
  }
}

// Int8 and int4 weights multiply rows quantized to int16 (kernels/packed_gemm.h): each
// row is rounded to levels q with scale s = max |x| / 32767, |x - q s| <= s / 2
// plus f32 rounding of x * (1 / s) and of s itself, at most 2^-21 max |x| (2
// ulp of a value below 32768 s). Given the rounded rows the sums are exact in
// int32 and the rest is f32 accumulation; against the f32 rows the bound adds
// sum_i |w_i| times that rounding.
at::Tensor int16_rounding_bound(const at::Tensor& x) {
  const at::Tensor top = std::get<0>(x.abs().max(1, true));
  return (top / 32767 / 2 + std::ldexp(1.0, -21) * top).expand(x.sizes());
}
void expect_within_int16_rows(const at::Tensor& got, const at::Tensor& x, const at::Tensor& wf,
                              const std::string& what) {
  const at::Tensor bound = int16_rounding_bound(x).to(at::kDouble);
  const at::Tensor xd = x.to(at::kDouble), wd = wf.to(at::kDouble);
  const at::Tensor want = at::mm(xd, wd.t());
  const double u = std::ldexp(1.0, -24) * (static_cast<double>(x.size(1)) + 2);
  const at::Tensor allowed =
      u * at::mm(xd.abs() + bound, wd.abs().t()) + at::mm(bound, wd.abs().t());
  EXPECT_LE(((got.to(at::kDouble) - want).abs() - allowed - 1e-30).max().item<double>(), 0.0)
      << what;
}

TEST(WeightFormats, SmallGemmReadsEachDtypeAsItsWidenedValues) {
  at::manual_seed(3);
  for (WeightType type :
       {WeightType::BF16, WeightType::F16, WeightType::Int8, WeightType::Int4, WeightType::F32})
    for (int rows : {1, 2, 3, 4, 5, 9, 16})
      for (int in : {1, 17, 64, 100, 129, 300})
        for (int out : {1, 6, 13, 40}) {
          const at::Tensor x = at::randn({rows, in});
          const auto [w, s, wf] = stored(at::randn({out, in}), type);
          at::Tensor y = at::full({rows, out}, 99.0f);
          const WeightRows wr = weight_rows(w, s);
          // Split the outputs as threads would.
          const int cut = out / 3;
          small_gemm(wr, in, x.data_ptr<float>(), in, rows, nullptr, y.data_ptr<float>(), out, 0,
                     cut);
          small_gemm(wr, in, x.data_ptr<float>(), in, rows, nullptr, y.data_ptr<float>(), out, cut,
                     out);
          const std::string what = std::string(weight_type_name(type)) + " rows " +
                                   std::to_string(rows) + " in " + std::to_string(in) + " out " +
                                   std::to_string(out);
          if (packed_weights(type))
            expect_within_int16_rows(y, x, wf, what);
          else
            expect_within_accumulation(y, x, wf, what);
        }
}

// Decode multiplies int8 and int4 weights by int16 activations
// (kernels/packed_gemm.h), within the bounds above. Output counts of 40 and
// 70 span several packed blocks of 16 rows, and the split at out / 3 starts a
// range inside a block; 8 to 16 rows take AVX-512's tiles of 8 rows, 5 the
// tiles of 4 and 1; 1, 2 and 3 rows the kernel's 4, 2 and 1 chains per row
// (int4 units feed two chains each). Inputs of 17, 100 and 129 end inside an
// int4 group of 32 and inside a column quad.
TEST(WeightFormats, PackedGemmOnInt16RowsStaysWithinBothRoundings) {
  // Every instruction set this CPU runs (AVX-512 takes the VNNI instruction
  // where present, the others the pairwise multiply-add), not only the best.
  for (const int64_t target : hwy::SupportedAndGeneratedTargets()) {
    hwy::SetSupportedTargetsForTest(target);
    SCOPED_TRACE(hwy::TargetName(target));
    at::manual_seed(8);
    for (WeightType type : {WeightType::Int8, WeightType::Int4})
      for (int rows : {1, 2, 3, 5, 8, 11, 16})
        for (int in : {1, 17, 64, 100, 129, 300, 768})
          for (int out : {1, 6, 13, 40, 70}) {
            const std::string what = std::string(weight_type_name(type)) + " rows " +
                                     std::to_string(rows) + " in " + std::to_string(in) + " out " +
                                     std::to_string(out);
            const at::Tensor x = at::randn({rows, in}) * at::rand({rows, 1}) * 3;
            const auto [w, s, wf] = stored(at::randn({out, in}), type);
            const int ld = int8_padded_cols(in);
            at::Tensor qp = at::full({rows, ld}, 77, at::kShort), qs = at::empty({rows});
            quantize_rows_int16(x.data_ptr<float>(), in, rows, in, qp.data_ptr<int16_t>(), ld,
                                qs.data_ptr<float>());
            // The padding the kernel reads is zeroed.
            EXPECT_EQ(qp.narrow(1, in, ld - in).abs().sum().item<int>(), 0) << what;
            const at::Tensor q = qp.narrow(1, 0, in);
            const at::Tensor top = std::get<0>(x.abs().max(1, true));
            EXPECT_TRUE(at::allclose(qs, top.squeeze(1) / 32767, 1e-6, 0)) << what;
            EXPECT_EQ(q.abs().max().item<int>(), 32767) << what;
            const at::Tensor xr = q.to(at::kFloat) * qs.unsqueeze(1);
            const at::Tensor dx = (x - xr).abs();
            EXPECT_LE((dx - int16_rounding_bound(x)).max().item<float>(), 0.0f) << what;
            at::Tensor y = at::full({rows, out}, 99.0f);
            const WeightRows wr = weight_rows(w, s);
            const Int16Rows xq{qp.data_ptr<int16_t>(), static_cast<std::size_t>(ld),
                               qs.data_ptr<float>()};
            const int cut = out / 3;
            small_gemm_packed(wr, in, xq, rows, nullptr, y.data_ptr<float>(), out, 0, cut);
            small_gemm_packed(wr, in, xq, rows, nullptr, y.data_ptr<float>(), out, cut, out);
            expect_within_accumulation(y, xr, wf, "int16 rows, " + what);
            expect_within_int16_rows(y, x, wf, "f32 rows, " + what);
          }
  }
  hwy::SetSupportedTargetsForTest(0);
  // An all-zero row: zero levels and scale, a zero product (not NaN).
  std::vector<float> zeros(70, 0.0f);
  std::vector<int16_t> zq(128, 1);
  float zs = 1;
  quantize_rows_int16(zeros.data(), 70, 1, 70, zq.data(), 128, &zs);
  EXPECT_EQ(zs, 0.0f);
  for (int16_t v : zq) EXPECT_EQ(v, 0);
}

TEST(WeightFormats, WeightRowsToF32MatchesLibtorchConversions) {
  at::manual_seed(4);
  for (WeightType type : {WeightType::BF16, WeightType::F16, WeightType::Int8, WeightType::Int4})
    for (int cols : {150, 151}) {
      // 37 rows: three packed blocks, the last one partial; 150 and 151
      // columns end inside a group, 151 inside a column pair (and inside an
      // int4 quad's high nibbles, 150 inside its low ones).
      const auto [w, s, wf] = stored(at::randn({37, cols}), type);
      at::Tensor out = at::empty({33, cols});
      weight_rows_to_f32(weight_rows(w, s), cols, 2, 35, out.data_ptr<float>());
      EXPECT_TRUE(at::equal(out, wf.narrow(0, 2, 33))) << weight_type_name(type) << " " << cols;
    }
}

TEST(WeightFormats, WeightRowsToBf16RoundsTheWidenedValueToNearestEven) {
  // libtorch's f32 -> bf16 conversion rounds to nearest even; 150 columns
  // leave a partial group and a tail shorter than a vector.
  at::manual_seed(6);
  {
    const auto [w, s, wf] = stored(at::randn({37, 150}) * 3, WeightType::BF16);
    std::vector<uint16_t> out(33 * 150);
    weight_rows_to_bf16(weight_rows(w, s), 150, 2, 35, out.data());
    const at::Tensor want = wf.narrow(0, 2, 33).to(at::kBFloat16).contiguous();
    EXPECT_EQ(std::memcmp(out.data(), want.data_ptr(), 2 * out.size()), 0);
  }
  // Packed int8 and int4 rows come out as a transposed tile, on every
  // instruction set this CPU runs (AVX2 takes two passes per block of 16
  // rows): rows [16, 37) end inside a block, [0, 37) span three; 150 columns
  // end inside an int4 quad.
  for (WeightType type : {WeightType::Int8, WeightType::Int4}) {
    const auto [w, s, wf] = stored(at::randn({37, 150}) * 3, type);
    EXPECT_THROW(
        weight_rows_to_bf16(weight_rows(w, s), 150, 0, 1, std::vector<uint16_t>(150).data()),
        Error);
    for (const int64_t target : hwy::SupportedAndGeneratedTargets()) {
      hwy::SetSupportedTargetsForTest(target);
      for (const auto [begin, end] : {std::pair{16, 37}, std::pair{0, 37}, std::pair{0, 16}}) {
        const int n = end - begin;
        std::vector<uint16_t> out(150 * (n + 3), 7);
        packed_rows_to_bf16_transposed(weight_rows(w, s), 150, begin, end, out.data(), n + 3);
        const at::Tensor want = wf.narrow(0, begin, n).t().to(at::kBFloat16).contiguous();
        const auto* wp = static_cast<const uint16_t*>(want.data_ptr());
        int differ = 0, touched = 0;
        for (int i = 0; i < 150; ++i) {
          for (int o = 0; o < n; ++o) differ += out[i * (n + 3) + o] != wp[i * n + o];
          for (int o = n; o < n + 3; ++o) touched += out[i * (n + 3) + o] != 7;
        }
        const std::string what = std::string(weight_type_name(type)) + " " +
                                 hwy::TargetName(target) + " rows " + std::to_string(begin) + "-" +
                                 std::to_string(end);
        EXPECT_EQ(differ, 0) << what;
        EXPECT_EQ(touched, 0) << what;
      }
    }
    hwy::SetSupportedTargetsForTest(0);
    EXPECT_THROW(packed_rows_to_bf16_transposed(weight_rows(w, s), 150, 2, 5,
                                                std::vector<uint16_t>(450).data(), 3),
                 Error);
  }
  // Activations: any f32 length, the same conversion.
  const at::Tensor x = at::randn({1003}) * 100;
  std::vector<uint16_t> xb(1003);
  f32_to_bf16_bits(x.data_ptr<float>(), 1003, xb.data());
  const at::Tensor xw = x.to(at::kBFloat16);
  EXPECT_EQ(std::memcmp(xb.data(), xw.data_ptr(), 2 * 1003), 0);
  // Ties, level 1 in two rows: 1 + 2^-8 lies halfway between bf16's 1
  // (0x3F80) and 1 + 2^-7 (0x3F81) and goes to the even 0x3F80; 1 + 3 * 2^-8
  // lies halfway between 0x3F81 and 1 + 2^-6 (0x3F82) and goes to 0x3F82.
  // Truncation would give 0x3F81 there, rounding half up 0x3F81 in row 0.
  std::vector<int8_t> levels(2 * kWeightGroup, 0);
  levels[0] = levels[kWeightGroup] = 1;
  const float scales[2] = {1.0f + 1.0f / 256, 1.0f + 3.0f / 256};
  std::vector<int8_t> packed(int8_block_bytes(kWeightGroup));
  std::vector<uint16_t> packed_scales(kInt8BlockRows);
  pack_int8_rows(levels.data(), kWeightGroup, scales, 1, 2, kWeightGroup, packed.data(),
                 packed_scales.data());
  std::vector<uint16_t> out(2 * kWeightGroup, 7);
  packed_rows_to_bf16_transposed(WeightRows{WeightType::Int8, packed.data(), packed.size(),
                                            packed_scales.data(), kInt8BlockRows},
                                 kWeightGroup, 0, 2, out.data(), 2);
  EXPECT_EQ(out[0], 0x3F80);  // (0, 0)
  EXPECT_EQ(out[1], 0x3F82);  // (1, 0)
  EXPECT_EQ(out[2], 0);       // (0, 1)
}

// The packed int8 layout (kernels/weight_rows.h), byte by byte: a 20 x 70
// matrix is two blocks of 16 rows (12 padding rows) of two groups (58
// padding columns), 2 x 2 x 1024 bytes.
TEST(WeightFormats, Int8PacksSixteenRowsByColumnPairs) {
  const int rows = 20, cols = 70;
  std::vector<int8_t> levels(rows * cols);
  for (int o = 0; o < rows; ++o)
    for (int i = 0; i < cols; ++i)
      levels[o * cols + i] = static_cast<int8_t>((o * 7 + i) % 251 - 125);
  std::vector<float> scales(rows * 2);
  for (int k = 0; k < rows * 2; ++k) scales[k] = 0.5f + k;
  ASSERT_EQ(int8_block_bytes(cols), 2048u);
  std::vector<int8_t> packed(2 * 2048, 99);
  std::vector<uint16_t> ps(2 * 2 * 16, 99);
  pack_int8_rows(levels.data(), cols, scales.data(), 2, rows, cols, packed.data(), ps.data());
  // Hand-placed: (0, 0) and (0, 1) open the first pair; (1, 0) follows them;
  // (0, 2) opens the second pair, 32 bytes on; (17, 65) is block 1, group
  // 1, pair 0, row 1, second byte: 2048 + 1024 + 2 + 1.
  EXPECT_EQ(packed[0], levels[0]);
  EXPECT_EQ(packed[1], levels[1]);
  EXPECT_EQ(packed[2], levels[cols]);
  EXPECT_EQ(packed[32], levels[2]);
  EXPECT_EQ(packed[3075], levels[17 * cols + 65]);
  // (3, 69): block 0, group 1, pair 2, row 3, second byte.
  EXPECT_EQ(packed[1024 + 64 + 6 + 1], levels[3 * cols + 69]);
  // Padding: row 20 (block 1, row 4) and column 70 are zero.
  EXPECT_EQ(packed[2048 + 8], 0);
  EXPECT_EQ(packed[1024 + 3 * 32 + 0], 0);  // (0, 70)
  // Scales: block, group, row. (17, group 1) = block 1, group 1, row 1.
  // Each 0.5 + k is 512 (2k + 1) units of 2^-10, a half exactly.
  const auto unit_scale = [&](int k) { return f16_to_f32(ps[k]) * kInt8ScaleUnit; };
  EXPECT_EQ(unit_scale(0), scales[0]);
  EXPECT_EQ(unit_scale(1), scales[2]);
  EXPECT_EQ(unit_scale(16), scales[1]);
  EXPECT_EQ(unit_scale(32 + 16 + 1), scales[17 * 2 + 1]);
  EXPECT_EQ(ps[32 + 4], 0);
  // A view into a packed matrix (a fused QKV's wk) has no packed layout of
  // its own: refused, not read as if it had.
  const auto [w, s] = quantize_int8(at::randn({40, 70}));
  EXPECT_NO_THROW(weight_rows(w, s));
  EXPECT_THROW(weight_rows(w.narrow(0, 16, 16), s), Error);
  EXPECT_THROW(weight_rows(w, s.view({-1, 16})), Error);
}

TEST(WeightFormats, Int8LevelsAreWithinHalfAStepOfTheWeights) {
  // Hand-made group: max |w| = 2.54, so the step is 0.02, held as the next
  // f16 multiple of 2^-10 up: 0.02 * 2^10 = 20.48 lies in [16, 32), where
  // halves are 2^-6 apart, so 1311 * 2^-6 * 2^-10; 1.0 -> level 50.
  std::vector<float> w(kWeightGroup + 3, 0.0f);
  w[0] = -2.54f;
  w[1] = 1.0f;
  w[2] = 0.0099f;          // below half a step: level 0
  w[kWeightGroup] = 0.5f;  // second (partial) group: its own scale 0.5 / 127
  std::vector<int8_t> q(w.size());
  float scales[2];
  quantize_int8_rows(w.data(), w.size(), 1, static_cast<int>(w.size()), q.data(), w.size(), scales,
                     2);
  EXPECT_EQ(scales[0], 1311 * 0x1p-16f);
  // 0.5 / 127 * 2^10 = 4.03 in [4, 8), halves 2^-8 apart: 1033 of them.
  EXPECT_EQ(scales[1], 1033 * 0x1p-18f);
  EXPECT_EQ(q[0], -127);
  EXPECT_EQ(q[1], 50);
  EXPECT_EQ(q[2], 0);
  EXPECT_EQ(q[kWeightGroup], 127);
  // Random rows: every element within scale / 2 (plus f32 rounding of the product).
  at::manual_seed(5);
  const at::Tensor f = at::randn({9, 333}) * at::rand({9, 1}) * 4;
  const at::Tensor step =
      (std::get<0>(f.view({9, -1}).narrow(1, 0, 320).reshape({9, 5, 64}).abs().max(2)) / 127)
          .repeat_interleave(kWeightGroup, 1);
  const at::Tensor last = std::get<0>(f.narrow(1, 320, 13).abs().max(1, true)) / 127;
  const at::Tensor steps = at::cat({step, last.expand({9, 13})}, 1);
  // The held step is at most 2^-10 above max |w| / 127 (a half's spacing).
  const at::Tensor err =
      (int8_values(f) - f).abs() - (0.5 * steps * (1 + 0x1p-10) * (1 + 1e-6) + 1e-12);
  EXPECT_LE(err.max().item<float>(), 0.0f);
  // An all-zero group quantizes to zeros with a zero scale, not NaN.
  std::vector<float> zeros(kWeightGroup, 0.0f);
  std::vector<int8_t> zq(kWeightGroup, 1);
  float zs = 1;
  quantize_int8_rows(zeros.data(), kWeightGroup, 1, kWeightGroup, zq.data(), kWeightGroup, &zs, 1);
  EXPECT_EQ(zs, 0.0f);
  for (int8_t v : zq) EXPECT_EQ(v, 0);
  // 8,000 / 127 is 64,504 units of 2^-10, inside f16's 65,504; 9,000 is
  // past it and refused rather than clamped.
  std::vector<float> big(kWeightGroup, 0.0f);
  big[3] = 8000.0f;
  EXPECT_NO_THROW(quantize_int8_rows(big.data(), kWeightGroup, 1, kWeightGroup, zq.data(),
                                     kWeightGroup, &zs, 1));
  EXPECT_EQ(zq[3], 127);
  big[3] = -9000.0f;
  EXPECT_THROW(quantize_int8_rows(big.data(), kWeightGroup, 1, kWeightGroup, zq.data(),
                                  kWeightGroup, &zs, 1),
               Error);
}

// The packed int4 layout (kernels/weight_rows.h), nibble by nibble: a 20 x
// 70 matrix is two blocks of 16 rows of four groups of 32 columns (70
// columns padded to 128, as the activation rows are), 2 x 4 x 256 bytes.
TEST(WeightFormats, Int4PacksSixteenRowsByColumnQuads) {
  const int rows = 20, cols = 70;
  std::vector<int8_t> levels(rows * cols);
  for (int o = 0; o < rows; ++o)
    for (int i = 0; i < cols; ++i) levels[o * cols + i] = static_cast<int8_t>((o * 7 + i) % 16 - 8);
  std::vector<float> scales(rows * 3);
  for (int k = 0; k < rows * 3; ++k) scales[k] = 0.5f + k;
  ASSERT_EQ(int4_groups(cols), 4);
  ASSERT_EQ(int4_block_bytes(cols), 1024u);
  std::vector<uint8_t> packed(2 * 1024, 99);
  std::vector<uint16_t> ps(2 * 4 * 16, 99);
  pack_int4_rows(levels.data(), cols, scales.data(), 3, rows, cols, packed.data(), ps.data());
  auto level = [&](int o, int i) { return levels[o * cols + i]; };
  auto nib = [](int byte, int which) { return which == 0 ? byte & 15 : byte >> 4; };
  auto as_nibble = [](int l) { return l & 15; };
  // Hand-placed: (0, 0) and (0, 2) share byte 0 (low, high), (0, 1) and
  // (0, 3) byte 1; (1, 0) is byte 2; (0, 4) opens the second quad, 32 bytes
  // on; (17, 65) is block 1, group 2, quad 0, row 1, odd column, low:
  // 1024 + 512 + 2 + 1; (5, 38) is group 1, quad 1, row 5, even, high:
  // 256 + 32 + 10.
  EXPECT_EQ(nib(packed[0], 0), as_nibble(level(0, 0)));
  EXPECT_EQ(nib(packed[0], 1), as_nibble(level(0, 2)));
  EXPECT_EQ(nib(packed[1], 0), as_nibble(level(0, 1)));
  EXPECT_EQ(nib(packed[1], 1), as_nibble(level(0, 3)));
  EXPECT_EQ(nib(packed[2], 0), as_nibble(level(1, 0)));
  EXPECT_EQ(nib(packed[32], 0), as_nibble(level(0, 4)));
  EXPECT_EQ(nib(packed[1539], 0), as_nibble(level(17, 65)));
  EXPECT_EQ(nib(packed[298], 1), as_nibble(level(5, 38)));
  // Padding: (0, 70) is byte 544's high nibble, beside (0, 68) in its low
  // one; row 20 (block 1, row 4) is zero.
  EXPECT_EQ(packed[544], as_nibble(level(0, 68)));
  EXPECT_EQ(packed[1024 + 8], 0);
  // The reader sign-extends: level -8 is nibble 8 and reads back as -8.
  const WeightRows w{WeightType::Int4, packed.data(), 1024, ps.data(), 64};
  for (int o = 0; o < rows; ++o)
    for (int i = 0; i < cols; ++i) ASSERT_EQ(int4_level(w, o, i), level(o, i)) << o << " " << i;
  // Scales: block, group, row. (17, group 2) = 64 + 2 * 16 + 1.
  const auto unit_scale = [&](int k) { return f16_to_f32(ps[k]) * kInt8ScaleUnit; };
  EXPECT_EQ(unit_scale(0), scales[0]);
  EXPECT_EQ(unit_scale(16), scales[1]);
  EXPECT_EQ(unit_scale(64 + 32 + 1), scales[17 * 3 + 2]);
  EXPECT_EQ(ps[3 * 16], 0);  // group 3 holds padding only
  // The uint8 view is the matrix's shape over the packing alone (plus half a
  // padded row), and views into it are refused as int8's are.
  const auto [wt, st] = quantize_int4(at::randn({40, 70}));
  EXPECT_EQ(wt.sizes(), (at::IntArrayRef{40, 70}));
  EXPECT_EQ(static_cast<int64_t>(wt.storage().nbytes()), 3 * 1024 + 64);
  EXPECT_NO_THROW(weight_rows(wt, st));
  EXPECT_THROW(weight_rows(wt.narrow(0, 16, 16), st), Error);
  EXPECT_THROW(weight_rows(wt, st.view({-1, 16})), Error);
}

// Plain rounding's squared error per int4 group (scale max |w| / 7 rounded up
// to an f16 multiple of 2^-10, levels in [-7, 7]): a second, plain quantizer
// the searched one must never do worse than.
std::vector<double> plain_int4_errors(const float* w, int cols) {
  std::vector<double> errs;
  for (int i0 = 0; i0 < cols; i0 += kInt4Group) {
    const int i1 = std::min(cols, i0 + kInt4Group);
    float top = 0.0f;
    for (int i = i0; i < i1; ++i) top = std::max(top, std::fabs(w[i]));
    const float scale = f16_to_f32(f16_scale_at_least(top / 7 / kInt8ScaleUnit)) * kInt8ScaleUnit;
    double e = 0;
    for (int i = i0; i < i1; ++i) {
      const double q = scale > 0 ? std::clamp(std::nearbyint(w[i] / scale), -7.0f, 7.0f) : 0.0;
      e += (w[i] - q * scale) * (w[i] - q * scale);
    }
    errs.push_back(e);
  }
  return errs;
}

TEST(WeightFormats, Int4LevelsErrNoMoreThanPlainRounding) {
  // Hand-made group {-2.1, 1.0, 0, ...}: |scale| = 2.1 / c rounded up to an
  // f16 multiple of 2^-10 (in [256, 512) units halves are 2^-2 apart):
  //   c = 8: 0.2625 -> 269 * 2^-10; levels -8 (-2.1016), 4 (1.0508):
  //          squared error 0.0016^2 + 0.0508^2 = 0.00258
  //   c = 7: 307.25 * 2^-10; levels -7, 3 (0.9001): 0.0998^2 = 0.00997
  //   c = 7.5 and 6.5 leave -2.1 0.14-0.16 away: larger still.
  // m = -2.1 is negative, so the scale stays positive. The second (partial)
  // group holds only 0.5, positive: scale -0.5 / 8 = -2^-4 exactly, level -8.
  std::vector<float> w(kInt4Group + 3, 0.0f);
  w[0] = -2.1f;
  w[1] = 1.0f;
  w[kInt4Group] = 0.5f;
  std::vector<int8_t> q(w.size());
  float scales[2];
  quantize_int4_rows(w.data(), w.size(), 1, static_cast<int>(w.size()), q.data(), w.size(), scales,
                     2);
  EXPECT_EQ(scales[0], 269 * 0x1p-10f);
  EXPECT_EQ(q[0], -8);
  EXPECT_EQ(q[1], 4);
  EXPECT_EQ(q[2], 0);
  EXPECT_EQ(scales[1], -0x1p-4f);
  EXPECT_EQ(q[kInt4Group], -8);
  // Random rows (with a partial last group): levels in [-8, 7], and each
  // group's squared error at most plain rounding's, and below it overall.
  at::manual_seed(5);
  const int rows = 9, cols = 333, groups = 11;
  const at::Tensor f = (at::randn({rows, cols}) * at::rand({rows, 1}) * 4).contiguous();
  std::vector<int8_t> lv(rows * cols);
  std::vector<float> sv(rows * groups);
  quantize_int4_rows(f.data_ptr<float>(), cols, rows, cols, lv.data(), cols, sv.data(), groups);
  EXPECT_EQ(*std::max_element(lv.begin(), lv.end()), 7);
  EXPECT_EQ(*std::min_element(lv.begin(), lv.end()), -8);
  double searched_total = 0, plain_total = 0;
  for (int o = 0; o < rows; ++o) {
    const float* row = f.data_ptr<float>() + o * cols;
    const std::vector<double> plain = plain_int4_errors(row, cols);
    for (int g = 0; g < groups; ++g) {
      double e = 0;
      for (int i = g * kInt4Group; i < std::min(cols, (g + 1) * kInt4Group); ++i) {
        const double d = row[i] - lv[o * cols + i] * static_cast<double>(sv[o * groups + g]);
        e += d * d;
      }
      EXPECT_LE(e, plain[g] * (1 + 1e-5) + 1e-12) << "row " << o << " group " << g;
      searched_total += e;
      plain_total += plain[g];
    }
  }
  EXPECT_LT(searched_total, 0.9 * plain_total);
  // An all-zero group: zero levels and scale, not NaN.
  std::vector<float> zeros(kInt4Group, 0.0f);
  std::vector<int8_t> zq(kInt4Group, 1);
  float zs = 1;
  quantize_int4_rows(zeros.data(), kInt4Group, 1, kInt4Group, zq.data(), kInt4Group, &zs, 1);
  EXPECT_EQ(zs, 0.0f);
  for (int8_t v : zq) EXPECT_EQ(v, 0);
  // 440 / 7 fits the f16 scale (62.9 of at most 63.97); 450 does not and
  // is refused rather than clamped.
  std::vector<float> big(kInt4Group, 0.0f);
  big[3] = 440.0f;
  EXPECT_NO_THROW(
      quantize_int4_rows(big.data(), kInt4Group, 1, kInt4Group, zq.data(), kInt4Group, &zs, 1));
  big[3] = -450.0f;
  EXPECT_THROW(
      quantize_int4_rows(big.data(), kInt4Group, 1, kInt4Group, zq.data(), kInt4Group, &zs, 1),
      Error);
}

TEST(WeightFormats, ProjectReadsStoredWeightsForFewAndManyRows) {
  configure_threads(2);
  at::manual_seed(6);
  // 1-16 rows take the streaming kernel; 40 and 300 rows take the bf16
  // product (bf16, int8) or converted f32 tiles (f16; 300 output features:
  // one full tile of 256 and a partial one). 1100 output features give the
  // bf16 product several tiles per thread.
  for (WeightType type : {WeightType::BF16, WeightType::F16, WeightType::Int8, WeightType::Int4})
    for (int rows : {1, 7, 16, 40, 300})
      for (int out : {13, 300, 1100}) {
        const auto [w, s, wf] = stored(at::randn({out, 130}), type);
        const at::Tensor b = at::randn({out}), x = at::randn({rows, 130});
        const at::Tensor y = project(x, w, b, s);
        ASSERT_EQ(y.sizes(), (at::IntArrayRef{rows, out}));
        const std::string what = std::string(weight_type_name(type)) + " rows " +
                                 std::to_string(rows) + " out " + std::to_string(out);
        // The bias adds one more rounding: compare without it.
        if (rows > kSmallGemmMaxRows && type != WeightType::F16)
          expect_within_bf16_product(y - b, x, wf, type, what);
        else if (packed_weights(type))
          expect_within_int16_rows(y - b, x, wf, what);
        else
          expect_within_accumulation(y - b, x, wf, what);
      }
}

// The many-row bf16 product narrows its pool workers to one OpenMP thread
// each; that must stay per thread: a thread started afterwards (a training
// or calibration thread) still gets libtorch's process-wide count.
TEST(WeightFormats, ManyRowProductLeavesLibtorchThreadCountAlone) {
  configure_threads(2);
  at::set_num_threads(2);
  const auto [w, s, wf] = stored(at::randn({1100, 130}), WeightType::BF16);
  const at::Tensor y = project(at::randn({300, 130}), w, at::Tensor(), s);
  ASSERT_EQ(y.size(0), 300);
  int seen = 0;
  std::thread([&] { seen = at::get_num_threads(); }).join();
  at::set_num_threads(1);
  EXPECT_EQ(seen, 2);
}

TEST(WeightFormats, EmbedReadsRowsInEveryFormat) {
  at::manual_seed(7);
  for (WeightType type : {WeightType::BF16, WeightType::F16, WeightType::Int8, WeightType::Int4}) {
    const auto [w, s, wf] = stored(at::randn({20, 70}), type);
    const at::Tensor ids = at::tensor({3, 0, 19, 3}, at::kLong);
    EXPECT_TRUE(at::equal(embed(w, s, ids), wf.index_select(0, ids)));
  }
  const auto [w, s, wf] = stored(at::randn({20, 70}), WeightType::Int8);
  EXPECT_THROW(embed(w, s, at::tensor({20}, at::kLong)), Error);
}

ModelConfig tiny_llama() {
  // hidden 200: not a multiple of the int8 group
  return llama_config({97, 128, 2, 8, 2, 16, 200, 256});
}

// The f32 model holding exactly the values `f32` holds once converted to `format`.
Model rounded_f32(const Model& f32, WeightFormat format) {
  Model r = random_model(f32.config, 1);
  // From the f32 weights by libtorch (and the reference int8 quantizer), not
  // read back through the packed layout.
  auto values = [&](const at::Tensor& f) {
    return format == WeightFormat::Int8   ? int8_values(f)
           : format == WeightFormat::Int4 ? int4_values(f)
           : format == WeightFormat::BF16 ? f.to(at::kBFloat16).to(at::kFloat)
           : format == WeightFormat::F16  ? f.to(at::kHalf).to(at::kFloat)
                                          : f.clone();
  };
  for (size_t l = 0; l < r.weights.layers.size(); ++l) {
    auto& R = r.weights.layers[l];
    const auto& F = f32.weights.layers[l];
    R = F;
    R.wqkv = values(F.wqkv);
    R.wo = values(F.wo);
    R.w_gate_up = values(F.w_gate_up);
    R.w_down = values(F.w_down);
    const int64_t nq = F.wq.size(0), nk = F.wk.size(0), f = F.w_gate.size(0);
    R.wq = R.wqkv.narrow(0, 0, nq);
    R.wk = R.wqkv.narrow(0, nq, nk);
    R.wv = R.wqkv.narrow(0, nq + nk, R.wqkv.size(0) - nq - nk);
    R.w_gate = R.w_gate_up.narrow(0, 0, f);
    R.w_up = R.w_gate_up.narrow(0, f, f);
  }
  r.weights.tok_emb = values(f32.weights.tok_emb);
  r.weights.lm_head = values(f32.weights.lm_head);
  r.weights.final_norm = f32.weights.final_norm;
  r.rope_inv_freq = f32.rope_inv_freq;
  return r;
}

Model deep_copy(const Model& m) {
  Model c = random_model(m.config, 1);
  auto clone = [](const at::Tensor& t) { return t.defined() ? t.clone() : t; };
  for (size_t l = 0; l < c.weights.layers.size(); ++l) {
    const auto& F = m.weights.layers[l];
    auto& C = c.weights.layers[l];
    for (auto [dst, src] : {std::pair{&C.wq, &F.wq},
                            {&C.wk, &F.wk},
                            {&C.wv, &F.wv},
                            {&C.wo, &F.wo},
                            {&C.w_gate, &F.w_gate},
                            {&C.w_up, &F.w_up},
                            {&C.w_down, &F.w_down},
                            {&C.attn_norm, &F.attn_norm},
                            {&C.mlp_norm, &F.mlp_norm}})
      *dst = clone(*src);
  }
  c.weights.tok_emb = clone(m.weights.tok_emb);
  c.weights.lm_head = clone(m.weights.lm_head);
  c.weights.final_norm = clone(m.weights.final_norm);
  c.finalize();
  return c;
}

double rel_err(const at::Tensor& a, const at::Tensor& b) {
  return (a - b).abs().max().item<double>() / b.abs().max().item<double>();
}

// Decode multiplies int8 weights by int16 activations, so there the int8
// model also rounds each matrix's input rows: by at most 2^-16 of the
// row's largest |x| per element (the bound above). Summed over a row of n
// inputs with independent signs that moves an output by about sqrt(n) 2^-16
// of |w| max|x| (2e-4 of it at n = 200), nine matrices deep (two layers of
// four and the head); 1e-3 of the logits' range leaves room for that, and the
// kernel-level test above checks the per-matrix bound exactly.
constexpr double kInt16RowsTolerance = 1e-3;

TEST(WeightFormats, WholeModelEqualsTheF32PathOnTheSameValues) {
  configure_threads(2);
  const Model base = random_model(tiny_llama(), 11, 0.1);
  std::mt19937 rng(2);
  // 12 tokens: every projection takes the streaming kernel (for int8 on
  // rows rounded to int16); 23: the many-row path (bf16 product for bf16 and
  // int8 weights).
  std::vector<int32_t> prompt(12), longer(23);
  for (auto& t : prompt) t = static_cast<int32_t>(rng() % 97);
  for (auto& t : longer) t = static_cast<int32_t>(rng() % 97);
  for (WeightFormat f :
       {WeightFormat::BF16, WeightFormat::F16, WeightFormat::Int8, WeightFormat::Int4}) {
    const bool packed = f == WeightFormat::Int8 || f == WeightFormat::Int4;
    Model held = deep_copy(base);
    convert_weights(held, f);
    EXPECT_EQ(current_weight_format(held), f);
    const Model ref = rounded_f32(deep_copy(base), f);
    // Dense prefill and decode (streaming kernel): only the summation order
    // differs, and for int8 the rows' int16 rounding.
    const double few = packed ? kInt16RowsTolerance : 1e-4;
    KVCache c1(held.config, 64), c2(ref.config, 64);
    const at::Tensor a = forward(held, prompt, c1, Logits::All);
    const at::Tensor b = forward(ref, prompt, c2, Logits::All);
    EXPECT_LT(rel_err(a, b), few) << weight_format_name(f);
    const std::vector<int32_t> next{5};
    EXPECT_LT(rel_err(forward(held, next, c1, Logits::Last), forward(ref, next, c2, Logits::Last)),
              few)
        << weight_format_name(f);
    // Many-row prefill. f16 converts tiles to f32 (summation order only);
    // bf16 products err by at most u ~ 3 * 2^-9 of sum |w x| per projection
    // (above), and the logits pass through 2 layers x 4 projections and the
    // head: to first order the relative errors add, so 9 u bounds the logits'
    // error relative to their range (the norms keep each layer's gain near 1).
    KVCache c3(held.config, 64), c4(ref.config, 64);
    const double tol = f == WeightFormat::F16 ? 1e-4 : 9 * 3 * std::ldexp(1.0, -9);
    EXPECT_LT(
        rel_err(forward(held, longer, c3, Logits::All), forward(ref, longer, c4, Logits::All)), tol)
        << weight_format_name(f);
    // The paged decoder (cache in f32 so that only the weights differ).
    CacheSpec spec;
    spec.key_dtype = spec.value_dtype = CacheDType::F32;
    BatchDecoder d1(held, {spec, 2}), d2(ref, {spec, 2});
    const int s1 = d1.add(prompt), s2 = d2.add(prompt);
    for (int32_t t : {7, 50, 96}) {
      const at::Tensor x = logits_tensor(d1.step(std::vector<int>{s1}, std::vector<int32_t>{t}));
      const at::Tensor y = logits_tensor(d2.step(std::vector<int>{s2}, std::vector<int32_t>{t}));
      EXPECT_LT(rel_err(x, y), packed ? kInt16RowsTolerance : 1e-4)
          << weight_format_name(f) << " token " << t;
    }
    // Twenty sequences in one step, more rows than the streaming kernel's
    // tile: int8 and f16 weights stay in their kernels (int8 on int16 rows,
    // as at one row), bf16 ones go to the bf16 product where the CPU has one
    // (then prefill's bound; else the streaming kernel's).
    BatchDecoder d3(held, {spec, 2}), d4(ref, {spec, 2});
    std::vector<int> ids3, ids4;
    std::vector<int32_t> next20;
    for (int k = 0; k < 20; ++k) {
      const std::vector<int32_t> p(prompt.begin(), prompt.begin() + 1 + k % 12);
      ids3.push_back(d3.add(p));
      ids4.push_back(d4.add(p));
      next20.push_back(static_cast<int32_t>((7 * k + 3) % 97));
    }
    const double many = f == WeightFormat::BF16 ? tol : packed ? kInt16RowsTolerance : 1e-4;
    EXPECT_LT(rel_err(logits_tensor(d3.step(ids3, next20)), logits_tensor(d4.step(ids4, next20))),
              many)
        << weight_format_name(f) << ", 20 rows";
  }
}

TEST(WeightFormats, ResidentBytesFollowTheFormat) {
  const Model base = random_model(tiny_llama(), 12);
  const int64_t f32 = base.resident_bytes();
  Model bf = deep_copy(base);
  convert_weights(bf, WeightFormat::BF16);
  Model q = deep_copy(base);
  convert_weights(q, WeightFormat::Int8);
  // The norms stay f32, so a little over half and a little over a quarter.
  EXPECT_LT(bf.resident_bytes(), 0.52 * f32);
  EXPECT_GT(bf.resident_bytes(), 0.5 * f32);
  EXPECT_LT(q.resident_bytes(), 0.29 * f32);
  EXPECT_LT(q.weight_bytes(), 0.29 * base.weight_bytes());
  EXPECT_THROW(convert_weights(q, WeightFormat::F32), Error);
  EXPECT_THROW(convert_weights(q, WeightFormat::Int4), Error);
  EXPECT_THROW(q.finalize(), Error);
  // int4: 4.5 bits a weight (4 plus a 16-bit scale per 32) over int8's 8.25,
  // with tiny_llama's 200 columns padded to 256 (int8's groups of 64 pad
  // them the same).
  Model q4 = deep_copy(base);
  convert_weights(q4, WeightFormat::Int4);
  EXPECT_EQ(current_weight_format(q4), WeightFormat::Int4);
  const double ratio = static_cast<double>(q4.weight_bytes()) / q.weight_bytes();
  EXPECT_GT(ratio, 4.5 / 8.25 - 0.02);
  EXPECT_LT(ratio, 4.5 / 8.25 + 0.02);
  EXPECT_THROW(convert_weights(q4, WeightFormat::Int8), Error);
  EXPECT_THROW(q4.finalize(), Error);
}

TEST(WeightFormats, CheckpointsLoadInTheirStoredDtypeAndSaveAsTheyCame) {
  namespace fs = std::filesystem;
  const fs::path dir = fs::temp_directory_path() / ("thinkeys_wf_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  const Model base = random_model(tiny_llama(), 13);
  save_model(base, dir, DType::BF16);
  const Model f32 = load_model(dir);  // the default: f32, as training needs
  const Model kept = load_model(dir, std::nullopt);
  const Model q = load_model(dir, WeightFormat::Int8);
  EXPECT_EQ(current_weight_format(f32), WeightFormat::F32);
  EXPECT_EQ(current_weight_format(kept), WeightFormat::BF16);
  EXPECT_EQ(kept.weights.layers[0].wqkv.scalar_type(), at::kBFloat16);
  EXPECT_EQ(kept.weights.layers[0].attn_norm.scalar_type(), at::kFloat);
  EXPECT_EQ(current_weight_format(q), WeightFormat::Int8);
  // The same bf16 values either way: widened exactly.
  EXPECT_TRUE(at::equal(kept.weights.layers[1].wo.to(at::kFloat), f32.weights.layers[1].wo));
  EXPECT_EQ(dtype_for_saving("stored", kept.config), DType::BF16);
  EXPECT_EQ(dtype_for_saving("", f32.config), DType::BF16);
  EXPECT_EQ(dtype_for_saving("f32", f32.config), DType::F32);
  EXPECT_THROW(dtype_for_saving("int3", f32.config), Error);
  // A 16-bit model saves as it is; int8 levels cannot be saved as weights.
  const fs::path again = dir.string() + "_again";
  save_model(kept, again, DType::BF16);
  EXPECT_TRUE(
      at::equal(load_model(again, std::nullopt).weights.layers[1].wo, kept.weights.layers[1].wo));
  EXPECT_THROW(save_model(q, dir.string() + "_q", DType::F32), Error);
  EXPECT_FALSE(fs::exists(dir.string() + "_q"));
  const Model q4 = load_model(dir, WeightFormat::Int4);
  EXPECT_EQ(current_weight_format(q4), WeightFormat::Int4);
  EXPECT_THROW(save_model(q4, dir.string() + "_q", DType::BF16), Error);
  EXPECT_FALSE(fs::exists(dir.string() + "_q"));
  fs::remove_all(dir);
  fs::remove_all(again);
  EXPECT_THROW(parse_weight_format("int3"), Error);
}

}  // namespace
}  // namespace thinkeys
