#pragma once
// How far ahead the decode GEMV kernels prefetch weight rows. One core
// streaming a few rows at a time leaves the hardware prefetcher far short of
// the DRAM rate (int8 rows of 768: 2.7 GB/s without, 10-23 GB/s with
// software prefetch, one thread, noisy machine), so every kernel requests
// each line of the row it reads `weight_prefetch_rows` rows further on: about
// kWeightPrefetchBytes ahead in the matrix, and at least one tile.
#include <algorithm>
#include <cstddef>

namespace thinkeys {

inline constexpr std::size_t kWeightPrefetchBytes = 6144;

// Rows ahead for rows of `row_elements` elements of `element_bytes` bytes
// read in tiles of `tile_rows`.
inline std::size_t weight_prefetch_rows(int tile_rows, std::size_t row_elements,
                                        std::size_t element_bytes = 1) {
  const std::size_t row_bytes = std::max<std::size_t>(1, row_elements * element_bytes);
  return std::max<std::size_t>(tile_rows, (kWeightPrefetchBytes + row_bytes - 1) / row_bytes);
}

}  // namespace thinkeys
