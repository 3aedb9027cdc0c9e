// The few-row GEMV kernel against at::linear and a double-precision loop, and
// project() routing decode rows through it without changing results, on the
// process-wide compute pool.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <atomic>
#include <cmath>
#include <memory>
#include <random>
#include <vector>

#include "kernels/small_gemm.h"
#include "model/engine_threads.h"
#include "model/layer_ops.h"
#include "util/error.h"
#include "util/work_pool.h"

namespace thinkeys {
namespace {

// |got - want| <= 1e-5 * sum_i |w_oi x_ri| + tiny: rounding of an f32 dot
// product grows with the magnitudes summed, not with the (possibly cancelled)
// result.
void expect_close(const at::Tensor& got, const at::Tensor& want, const at::Tensor& x,
                  const at::Tensor& w, const at::Tensor& b) {
  at::Tensor scale = at::linear(x.abs(), w.abs());
  if (b.defined()) scale = scale + b.abs();
  const at::Tensor err = (got - want).abs() - (1e-5 * scale + 1e-30);
  EXPECT_LE(err.max().item<float>(), 0.0f)
      << "rows " << x.size(0) << " in " << x.size(1) << " out " << w.size(0);
}

TEST(SmallGemm, MatchesLinearForOddShapes) {
  at::manual_seed(7);
  std::mt19937 rng(7);
  for (int rows : {1, 2, 3, 4, 5, 7, 8, 9, 15, 16})
    for (int in : {1, 3, 17, 64, 129, 773})
      for (int out : {1, 5, 13, 67}) {
        const at::Tensor x = at::randn({rows, in}), w = at::randn({out, in});
        const bool with_bias = (rows + in + out) % 2 == 0;
        const at::Tensor b = with_bias ? at::randn({out}) : at::Tensor();
        at::Tensor y = at::zeros({rows, out});
        // Split the outputs at an arbitrary point, as threads would.
        const int cut = std::uniform_int_distribution<int>(0, out)(rng);
        for (auto [o0, o1] : {std::pair{0, cut}, std::pair{cut, out}})
          small_gemm(w.data_ptr<float>(), in, in, x.data_ptr<float>(), in, rows,
                     with_bias ? b.data_ptr<float>() : nullptr, y.data_ptr<float>(), out, o0, o1);
        expect_close(y, with_bias ? at::linear(x, w, b) : at::linear(x, w), x, w, b);
      }
}

// W^T x added into out, for each float dtype a map can be held in: against
// libtorch's product of the widened matrix; rows of a larger matrix (ld >
// cols) and widths that are no whole vector; packed weights refused.
TEST(SmallGemm, TransposedProductAddsIntoTheOutput) {
  at::manual_seed(9);
  for (at::ScalarType st : {at::kFloat, at::kBFloat16, at::kHalf})
    for (int rows : {1, 3, 64})
      for (int cols : {1, 7, 16, 33, 256}) {
        const at::Tensor big = at::randn({rows, cols + 5}).to(st);
        const at::Tensor w = big.narrow(1, 0, cols);  // a row stride of cols + 5
        const at::Tensor x = at::randn({rows});
        const at::Tensor start = at::randn({cols});
        at::Tensor out = start.clone();
        const WeightType type = st == at::kFloat      ? WeightType::F32
                                : st == at::kBFloat16 ? WeightType::BF16
                                                      : WeightType::F16;
        small_gemm_transposed(WeightRows{type, big.data_ptr(), static_cast<std::size_t>(cols + 5)},
                              rows, cols, x.data_ptr<float>(), out.data_ptr<float>());
        const at::Tensor wf = w.to(at::kFloat);
        const at::Tensor want = start + at::matmul(x, wf);
        const at::Tensor scale = start.abs() + at::matmul(x.abs(), wf.abs());
        EXPECT_LE(((out - want).abs() - (1e-5 * scale + 1e-30)).max().item<float>(), 0.0f)
            << at::toString(st) << " rows " << rows << " cols " << cols;
      }
  const int8_t levels[32] = {};
  EXPECT_THROW(
      small_gemm_transposed(WeightRows{WeightType::Int8, levels, 32}, 1, 1, nullptr, nullptr),
      Error);
}

TEST(SmallGemm, StridedOperandsAndNothingWrittenOutsideTheRange) {
  // One row takes the row-at-a-time GEMV, six the tiles.
  for (const int rows : {1, 6}) {
    const int in = 37, out = 11, ldw = 40, ldx = 45, ldy = 19;
    std::mt19937 rng(3);
    std::normal_distribution<float> N;
    std::vector<float> w(out * ldw), x(rows * ldx), bias(out);
    for (auto* v : {&w, &x, &bias})
      for (auto& e : *v) e = N(rng);
    const float kSentinel = 12345.0f;
    std::vector<float> y(rows * ldy, kSentinel);
    const int o0 = 2, o1 = 9;
    small_gemm(w.data(), ldw, in, x.data(), ldx, rows, bias.data(), y.data(), ldy, o0, o1);
    for (int r = 0; r < rows; ++r)
      for (int o = 0; o < ldy; ++o) {
        const float got = y[r * ldy + o];
        if (o < o0 || o >= o1) {
          EXPECT_EQ(got, kSentinel) << r << " " << o;
          continue;
        }
        double want = bias[o], mag = std::fabs(bias[o]);
        for (int i = 0; i < in; ++i) {
          want += static_cast<double>(w[o * ldw + i]) * x[r * ldx + i];
          mag += std::fabs(static_cast<double>(w[o * ldw + i]) * x[r * ldx + i]);
        }
        EXPECT_NEAR(got, want, 1e-6 * mag) << r << " " << o;
      }
  }
}

TEST(SmallGemm, ProjectKeepsLinearResultsAndAutograd) {
  // Two threads, as the CLI configures them, so that the outputs are split
  // over project()'s pool (set before the first project() call creates it).
  configure_threads(2);
  at::manual_seed(11);
  for (int rows : {1, 2, 3, 8, 16, 17}) {
    const at::Tensor w = at::randn({200, 130}), b = at::randn({200});
    // A non-contiguous x (every other column) must give the same answer.
    const at::Tensor x = at::randn({rows, 260}).slice(1, 0, 260, 2);
    expect_close(project(x, w, b), at::linear(x, w, b), x, w, b);
    expect_close(project(x, w), at::linear(x, w), x, w, at::Tensor());
  }
  // Training passes rows that need gradients: they must keep their graph.
  const at::Tensor w = at::randn({8, 5}).requires_grad_(), x = at::randn({4, 5});
  at::Tensor y = project(x, w);
  ASSERT_TRUE(y.requires_grad());
  y.sum().backward();
  EXPECT_TRUE(at::allclose(w.grad(), x.sum(0).expand({8, 5})));
}

TEST(SmallGemm, ProjectFollowsTheConfiguredThreadCount) {
  // Before, the pool kept the count of its first use.
  const at::Tensor w = at::randn({300, 64}), x = at::randn({4, 64});
  for (int threads : {3, 1, 2}) {
    configure_threads(threads);
    EXPECT_EQ(project_threads(), threads);
    expect_close(project(x, w), at::linear(x, w), x, w, at::Tensor());
  }
}

TEST(SmallGemm, ComputePoolIsSharedUntilTheCountChanges) {
  configure_threads(2);
  const std::shared_ptr<WorkPool> a = compute_pool();
  EXPECT_EQ(compute_pool(), a);
  EXPECT_EQ(a->threads(), 2);
  configure_threads(3);
  const std::shared_ptr<WorkPool> b = compute_pool();
  EXPECT_NE(b, a);
  EXPECT_EQ(b->threads(), 3);
  std::atomic<int> done{0};
  a->run(10, [&](int, int) { done++; });  // the old pool still works for its holders
  EXPECT_EQ(done.load(), 10);
  configure_threads(2);
}

}  // namespace
}  // namespace thinkeys
