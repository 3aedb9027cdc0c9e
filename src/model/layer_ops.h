#pragma once
// The small tensor operations every forward path shares (dense prefill and
// decode, batched decode, training), so that they cannot drift apart.
#include <ATen/ATen.h>

#include <cstdint>
#include <vector>

#include "config/model_config.h"
#include "kernels/weight_rows.h"
#include "model/weights.h"

namespace thinkeys {

// y = x W^T + b for x [rows, in]. OpenBLAS 0.3.21 runs a few-row GEMM by
// packing the whole weight matrix first, 3-5x slower than streaming it once,
// and decode is exactly that case. So 1..kSmallGemmMaxRows f32 rows without
// autograd go through kernels/small_gemm on compute_pool(), which streams
// the weights once for all rows; other single rows through GEMV.
// Weights held as bf16, f16 or int8 (`w_scales`, model/weight_format.h) are
// read as stored by the same kernel; more rows than that multiply f32 tiles
// of them converted on the fly, never the whole matrix at once.
at::Tensor project(const at::Tensor& x, const at::Tensor& w, const at::Tensor& b = {},
                   const at::Tensor& w_scales = {});
// Rows `ids` of an embedding table held in any weight format, as f32 [n, D].
at::Tensor embed(const at::Tensor& table, const at::Tensor& scales, const at::Tensor& ids);
// Threads project() splits few-row GEMMs over: compute_threads() at the time
// of the call (configure_threads may change it between calls).
int project_threads();

class WorkPool;
// y = x W^T + b for more than kSmallGemmMaxRows f32 rows x [rows, in] and
// bf16 weights W [out, in], y [rows, out]: the rows rounded to bf16 once
// (into `x_bf16`, grown as needed) and multiplied by oneDNN's AVX512-BF16
// GEMM in tiles of output features on `pool`, as project() multiplies many
// rows. It does twice the multiply-adds per instruction of the f32
// arithmetic small_gemm keeps exact, which pays once the products are bound
// by arithmetic rather than by reading the weights: whole decode steps took
// 0.94-0.97x the time through it at 17 rows and 0.70-0.79x at 64
// (docs/results/decode.md). Returns false, doing nothing, for other weights,
// for kSmallGemmMaxRows rows or fewer, and where the CPU or the build has no
// such GEMM.
bool bf16_gemm_rows(WorkPool& pool, const WeightRows& w, int in, int out, const float* x, int rows,
                    const float* bias, float* y, std::vector<uint16_t>& x_bf16);

// LayerNorm or RMSNorm over the last dimension, as the config says.
at::Tensor normalize(const ModelConfig& c, const at::Tensor& x, const at::Tensor& w,
                     const at::Tensor& b);

// Rotate-half RoPE over the last dimension of x, with cos/sin broadcastable to
// x's shape but half its width or more: a thin width (keys trained with RoPE
// on their own dimensions) uses the first width/2 frequencies. Out of place,
// so autograd can go through it.
at::Tensor rotate(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin);

// The MLP of one layer on normalized rows h [rows, D], from the fused weights.
at::Tensor feed_forward(const ModelConfig& c, const LayerWeights& L, const at::Tensor& h);

}  // namespace thinkeys
