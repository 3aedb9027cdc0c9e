#pragma once
// Few-row GEMV over int8 weights in integer arithmetic. Widening each int8
// level to f32 and scaling it costs four vector instructions per weight vector
// before the FMA (batch-1 decode then runs at half the memory rate); instead
// each input row is quantized once per matrix to int16 with one scale per
// row, and levels times activations are summed exactly in int32 by widening
// pair multiplies (vpmaddwd on x86), one f32 FMA per group of kWeightGroup
// columns applying the weight scale. int16 activations (not int8 as in
// llama.cpp's Q8_0 path) keep the activation's rounding 258 times below the
// weights' own: |x - level * scale| <= scale / 2 with scale = max |x| / 32767.
#include <cstddef>
#include <cstdint>

#include "kernels/weight_rows.h"

namespace thinkeys {

// Activation rows as int16 levels, one f32 scale per row: x(r, i) ~=
// levels[r * ld + i] * scales[r].
struct Int16Rows {
  const int16_t* levels = nullptr;
  std::size_t ld = 0;
  const float* scales = nullptr;
};

// levels[r * ld + i] = round(x(r, i) * 32767 / max_i |x(r, i)|) (0 for an
// all-zero row) and scales[r] = max_i |x(r, i)| / 32767, for i in [0, in).
void quantize_rows_int16(const float* x, std::size_t ldx, int rows, int in, int16_t* levels,
                         std::size_t ld, float* scales);

// small_gemm (kernels/small_gemm.h) for WeightType::Int8 weights and
// quantized rows: y[r * ldy + o] = sum_g scale(o, g) * sum_{i in g} level(o,
// i) * x.levels(r, i) * x.scales[r] + (bias ? bias[o] : 0), the inner sums
// exact in int32.
void small_gemm_int8(const WeightRows& w, int in, const Int16Rows& x, int rows, const float* bias,
                     float* y, std::size_t ldy, int o_begin, int o_end);

}  // namespace thinkeys
