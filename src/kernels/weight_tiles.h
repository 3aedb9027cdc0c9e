#pragma once
// A tile of a stored weight matrix as bf16, for the many-row (prefill)
// product that multiplies bf16 rows by bf16 weights with f32 accumulation.
#include <cstddef>
#include <cstdint>

#include "kernels/weight_rows.h"

namespace thinkeys {

// out[(o - row_begin) * cols + i] = bf16 bits of element (o, i) for rows
// [row_begin, row_end): bf16 weights are copied; int8 levels times their
// group's scale are rounded to nearest even once (the level itself is exact
// in bf16). Other types are refused (Error).
void weight_rows_to_bf16(const WeightRows& w, int cols, int row_begin, int row_end, uint16_t* out);

// out[i] = x[i] rounded to the nearest bf16 (ties to even), as bits; finite
// inputs (the activations a product multiplies).
void f32_to_bf16_bits(const float* x, std::size_t n, uint16_t* out);

}  // namespace thinkeys
