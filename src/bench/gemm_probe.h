#pragma once
// The machine's f32 matrix-multiply rate as libtorch reaches it (the BLAS it
// links, with the threads configured), the denominator of a training run's
// model FLOP utilization. Measured in the same run as what it divides, since
// the machine is shared and its rate moves.
#include <cstdint>
#include <vector>

namespace thinkeys {

struct GemmShape {
  int64_t m = 0, k = 0, n = 0;  // [m, k] x [k, n]
};

struct GemmRate {
  GemmShape shape;
  double best_gflops = 0;    // 2 m k n / fastest repeat, 1e9 FLOP/s
  double median_gflops = 0;  // 2 m k n / median repeat
};

// The square 2048 product and the linear-layer products of a 2,048-token
// step of the reference models (width 256, MLP 704).
std::vector<GemmShape> default_gemm_shapes();

GemmRate probe_gemm_rate(const GemmShape& shape, int repeats);

}  // namespace thinkeys
