#pragma once
// A tile of a stored weight matrix as bf16, for the many-row (prefill)
// product that multiplies bf16 rows by bf16 weights with f32 accumulation.
#include <cstddef>
#include <cstdint>

#include "kernels/weight_rows.h"

namespace thinkeys {

// out[(o - row_begin) * cols + i] = bits of element (o, i) of a bf16 matrix
// for rows [row_begin, row_end). Other types are refused (Error).
void weight_rows_to_bf16(const WeightRows& w, int cols, int row_begin, int row_end, uint16_t* out);

// The transposed tile of a packed int8 or int4 matrix: out[i * ldo + (o -
// row_begin)] = level x scale of element (o, i) rounded once to the nearest
// bf16 (ties to even; the level itself is exact in bf16), for rows
// [row_begin, row_end), row_begin a multiple of 16. Transposed because the
// packed bytes hold a column of 16 rows together (kernels/weight_rows.h).
void packed_rows_to_bf16_transposed(const WeightRows& w, int cols, int row_begin, int row_end,
                                    uint16_t* out, std::size_t ldo);

// out[i] = x[i] rounded to the nearest bf16 (ties to even), as bits; finite
// inputs (the activations a product multiplies).
void f32_to_bf16_bits(const float* x, std::size_t n, uint16_t* out);

}  // namespace thinkeys
