#pragma once
// Few-row GEMV over packed int8 or int4 weights in integer arithmetic.
// Widening each int8 level to f32 and scaling it costs four vector
// instructions per weight vector before the FMA (batch-1 decode then runs at
// half the memory rate); instead
// each input row is quantized once per matrix to int16 with one scale per
// row, and levels times activations are summed exactly in int32 by widening
// pair multiplies (vpdpwssd or vpmaddwd on x86). The weights are packed 16
// rows by column pairs (kernels/weight_rows.h), so one multiply-add advances
// 16 outputs and the f32 epilogue applying the weight scales runs once per
// 16 rows x 64 columns; row by row it ran per row and group, and bounded the
// kernel (docs/results/decode.md). int16 activations (not int8 as in
// llama.cpp's Q8_0 path) keep the activation's rounding 258 times below the
// weights' own: |x - level * scale| <= scale / 2 with scale = max |x| / 32767;
// int8 activations were tried and cost 2.4x the KL on stories260K.
#include <cstddef>
#include <cstdint>
#include <vector>

#include "kernels/weight_rows.h"

namespace thinkeys {

// Activation rows as int16 levels, one f32 scale per row: x(r, i) ~=
// levels[r * ld + i] * scales[r]. The kernel reads whole column groups, so
// each row holds int8_padded_cols(in) levels (ld at least that), zero past
// `in`: quantize_rows_int16 writes them so.
struct Int16Rows {
  const int16_t* levels = nullptr;
  std::size_t ld = 0;
  const float* scales = nullptr;
};

// levels[r * ld + i] = round(x(r, i) * 32767 / max_i |x(r, i)|) (0 for an
// all-zero row) and scales[r] = max_i |x(r, i)| / 32767, for i in [0, in);
// levels up to int8_padded_cols(in) are zero (ld must be at least that).
void quantize_rows_int16(const float* x, std::size_t ldx, int rows, int in, int16_t* levels,
                         std::size_t ld, float* scales);

// Storage for quantized rows that callers keep between products: it grows to
// the largest product seen and is then reused without allocating. The rows it
// returns stay valid until the next quantize().
class Int16RowBuffer {
 public:
  Int16Rows quantize(const float* x, std::size_t ldx, int rows, int in);

 private:
  std::vector<int16_t> levels_;
  std::vector<float> scales_;
};

// small_gemm (kernels/small_gemm.h) for packed WeightType::Int8 or Int4
// weights (kernels/weight_rows.h) and quantized rows: y[r * ldy + o] = sum_g
// scale(o, g) * sum_{i in g} level(o, i) * x.levels(r, i) * x.scales[r] +
// (bias ? bias[o] : 0), the inner sums exact in int32. Any [o_begin, o_end);
// ranges that start and end on multiples of 16 waste no work. Int4 levels
// are unpacked in registers (two shifts for a low nibble, one for a high),
// so a 32-byte load feeds two multiply-adds instead of one: the int4 kernel
// does twice int8's integer work per byte it reads.
void small_gemm_packed(const WeightRows& w, int in, const Int16Rows& x, int rows, const float* bias,
                       float* y, std::size_t ldy, int o_begin, int o_end);

}  // namespace thinkeys
