#pragma once
// The dtype a model's large matrices are held in while it runs. Decode reads
// every projection, MLP and head weight once per step, so holding them as the
// checkpoint stored them (bf16, f16), or as int8 or int4 with per-group
// scales, divides the bytes a step streams. MLA's and LRKV's per-head maps
// follow in a float dtype (bf16 beside int8 / int4 matrices); small tensors
// (norms, biases, thin-key maps) stay f32.
#include <ATen/ATen.h>

#include <utility>

#include "kernels/weight_rows.h"
#include "model/weight_format_choice.h"
#include "model/weights.h"

namespace thinkeys {

// What the streamed matrices are held as now (F32 for a model never converted).
WeightFormat current_weight_format(const Model& m);

// Converts the streamed matrices (wqkv, wo, w_gate_up / w_up, w_down, tok_emb,
// lm_head) to `format`, MLA's and LRKV's maps to its float dtype (bf16 for
// int8 / int4) and every other tensor to f32, keeping the views into
// the fused matrices. Int8 and int4 are one-way: their levels cannot feed
// training, compression or finalize() again. Call after finalize().
void convert_weights(Model& m, WeightFormat format);

// An f32 matrix [rows, cols] as packed int8 levels (a [rows, cols] view of
// the padded blocks) and their scales, as convert_weights holds it.
std::pair<at::Tensor, at::Tensor> quantize_int8(const at::Tensor& w);
// The same for int4: the packed bytes (half a byte a weight) under a uint8
// [rows, cols] view whose rows overlap (stride half the padded width), so
// that shapes read as the matrix's while the storage holds only the packing.
std::pair<at::Tensor, at::Tensor> quantize_int4(const at::Tensor& w);

// The kernels' view of a 2-D CPU matrix held as f32, bf16, f16 or packed
// int8 / int4 as convert_weights makes it (`scales` f16 [int8_blocks(rows),
// groups, 16] for those, else undefined).
WeightRows weight_rows(const at::Tensor& w, const at::Tensor& scales = {});

}  // namespace thinkeys
