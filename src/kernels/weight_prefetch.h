#pragma once
// How far ahead the decode GEMV kernels prefetch weight rows. One core
// streaming a few rows at a time leaves the hardware prefetcher far short of
// the DRAM rate (int8 rows of 768: 2.7 GB/s without, 10-23 GB/s with
// software prefetch, one thread, noisy machine), so every kernel requests
// each line of the row it reads `weight_prefetch_rows` rows further on: about
// PrefetchTuning::weight_bytes ahead in the matrix, and at least one tile.
// The distances depend on the CPU (kernels/prefetch_tuning.h).
#include <algorithm>
#include <cstddef>

#include "kernels/prefetch_tuning.h"
#include "kernels/weight_rows.h"

namespace thinkeys {

// The packed int8 kernel (kernels/packed_gemm.cpp) requests one line at a
// time as it reads one, PrefetchTuning::int8_bytes on. It also requests
// PrefetchTuning::int8_start_bytes at the start of every range: a batch-1
// thread takes 16 KiB of rows at a time (runtime/fused_step.cpp), so every
// take starts with its first lines in flight. On the AMD VMs, with those 16
// KiB takes and starts, whole-model int8 steps paired in one process
// (docs/results/decode.md): 6 KiB ahead took 0.96-1.00x the time of 8 KiB at
// 1K (12 cells in three runs), 0.97-1.02x at 4K, level at batch 8; 12 and 16
// KiB 1.01-1.11x; 4 KiB mixed. Starts of 8 KiB instead of 16 took
// 1.05-1.10x; 24-32 KiB level. The 16-bit row kernel gained from neither 8
// KiB nor L1 there, and 16 KiB starts slowed it by 1-6%. On the Intel VM the
// settings differ (kernels/prefetch_tuning.cpp).

// Rows ahead for rows of `row_elements` elements of `element_bytes` bytes
// read in tiles of `tile_rows`.
inline std::size_t weight_prefetch_rows(int tile_rows, std::size_t row_elements,
                                        std::size_t element_bytes = 1) {
  const std::size_t row_bytes = std::max<std::size_t>(1, row_elements * element_bytes);
  const std::size_t ahead = prefetch_tuning().weight_bytes;
  return std::max<std::size_t>(tile_rows, (ahead + row_bytes - 1) / row_bytes);
}

// Requests every line of `rows` rows of `row_bytes` bytes, `stride` bytes
// apart, from `first` on. A kernel's steady-state prefetch covers the rows
// `weight_prefetch_rows` ahead of the ones it reads, so the first rows of the
// range a thread is handed would be read cold: the thread on the range
// before requests them at about the moment they are needed, if at all (a
// decode step's threads take about 64 KiB of rows at a time).
inline void prefetch_rows(const void* first, std::size_t rows, std::size_t row_bytes,
                          std::size_t stride) {
  const char* p = static_cast<const char*>(first);
  for (std::size_t r = 0; r < rows && row_bytes > 0; ++r, p += stride) {
    for (std::size_t b = 0; b < row_bytes; b += 64) __builtin_prefetch(p + b, 0, 2);
    __builtin_prefetch(p + row_bytes - 1, 0, 2);  // a row that does not start on a line
  }
}

// prefetch_rows for rows [first, first + rows) of a row-major matrix of
// `cols` columns (f32, bf16, f16; packed int8 prefetches by blocks in
// kernels/packed_gemm.cpp).
inline void prefetch_weight_rows(const WeightRows& w, int cols, int first, int rows) {
  const std::size_t bytes = weight_type_bytes(w.type);
  prefetch_rows(static_cast<const char*>(w.data) + first * w.ld * bytes, rows, cols * bytes,
                w.ld * bytes);
}

// The rows a kernel's steady-state prefetch skips at the start of a range of
// [first, end): weight_prefetch_rows of them for tiles of `tile_rows`.
inline void prefetch_range_start(const WeightRows& w, int cols, int first, int end, int tile_rows) {
  const std::size_t ahead = weight_prefetch_rows(tile_rows, cols, weight_type_bytes(w.type));
  prefetch_weight_rows(w, cols, first, static_cast<int>(std::min<std::size_t>(ahead, end - first)));
}

}  // namespace thinkeys
