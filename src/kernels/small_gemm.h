#pragma once
// y = W x + b for a handful of rows x, reading each weight row from memory
// once. Decode multiplies 1-16 token rows by every weight matrix; a general
// GEMM (OpenBLAS 0.3.21 here) packs the weights for such a tiny M and costs
// several times a single row's GEMV, although the step is bound by reading
// the weights once. One row goes here too rather than to OpenBLAS's GEMV, so
// that it runs on the compute pool that decode attention shares. Weights are
// read in their stored dtype (kernels/weight_rows.h) and widened to f32 in
// registers; products accumulate in f32. Int8 and int4 weights multiply the
// rows quantized to int16 (kernels/packed_gemm.h), as the decode step does.
#include <cstddef>

#include "kernels/packed_gemm.h"
#include "kernels/weight_rows.h"

namespace thinkeys {

// Rows of x the kernel is meant for; more work, but lose to a real GEMM.
inline constexpr int kSmallGemmMaxRows = 16;

// For output features o in [o_begin, o_end) and rows r in [0, rows):
// y[r * ldy + o] = sum_i W(o, i) * x[r * ldx + i] + (bias ? bias[o] : 0),
// i in [0, in). Row-major, any in (no alignment or width requirements).
// Callers split [0, out) over threads; ranges that do not overlap write
// disjoint outputs.
void small_gemm(const WeightRows& w, int in, const float* x, std::size_t ldx, int rows,
                const float* bias, float* y, std::size_t ldy, int o_begin, int o_end);

// A product's input rows made ready once for all the chunks threads run of
// it: for int8 / int4 weights quantized to int16 into `buffer` (valid until
// its next quantize), otherwise the f32 rows as given.
struct GemmRows {
  const float* x = nullptr;
  std::size_t ldx = 0;
  Int16Rows xq;  // int8 and int4 weights only
};
GemmRows prepare_gemm_rows(const WeightRows& w, int in, const float* x, std::size_t ldx, int rows,
                           Int16RowBuffer& buffer);
// small_gemm on rows from prepare_gemm_rows(w, ...).
void small_gemm(const WeightRows& w, int in, const GemmRows& x, int rows, const float* bias,
                float* y, std::size_t ldy, int o_begin, int o_end);
// The same for f32 weights w[o * ldw + i].
void small_gemm(const float* w, std::size_t ldw, int in, const float* x, std::size_t ldx, int rows,
                const float* bias, float* y, std::size_t ldy, int o_begin, int o_end);

// out[j] += sum_i W(i, j) * x[i] for j in [0, cols), i in [0, rows): W^T x,
// read row after row as stored. f32, bf16 and f16 weights (packed int8 /
// int4 blocks are refused); MLA's and LRKV's per-head maps absorbed into a
// query (runtime/variant_rows.h).
void small_gemm_transposed(const WeightRows& w, int rows, int cols, const float* x, float* out);

// Name of the instruction set the dispatcher picked on this machine.
const char* small_gemm_target();

}  // namespace thinkeys
