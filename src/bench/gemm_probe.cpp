#include "bench/gemm_probe.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <chrono>

#include "util/error.h"

namespace thinkeys {

std::vector<GemmShape> default_gemm_shapes() {
  return {{2048, 2048, 2048}, {2048, 256, 256}, {2048, 256, 704}, {2048, 704, 256}};
}

GemmRate probe_gemm_rate(const GemmShape& s, int repeats) {
  if (s.m <= 0 || s.k <= 0 || s.n <= 0 || repeats <= 0)
    throw Error("GEMM probe: sizes and repeats must be positive");
  at::Tensor a = at::randn({s.m, s.k}), b = at::randn({s.k, s.n}), c = at::empty({s.m, s.n});
  at::mm_out(c, a, b);  // warm: pages, BLAS buffers, threads
  std::vector<double> secs;
  for (int r = 0; r < repeats; ++r) {
    auto t0 = std::chrono::steady_clock::now();
    at::mm_out(c, a, b);
    secs.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  std::sort(secs.begin(), secs.end());
  const double flop =
      2.0 * static_cast<double>(s.m) * static_cast<double>(s.k) * static_cast<double>(s.n);
  return {s, flop / secs.front() / 1e9, flop / secs[secs.size() / 2] / 1e9};
}

}  // namespace thinkeys
