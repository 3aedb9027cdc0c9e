// Sampling against hand-derived distributions.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "runtime/sampler.h"
#include "util/error.h"

namespace thinkeys {
namespace {

std::vector<float> logits_for(const std::vector<double>& probs) {
  std::vector<float> l;
  for (double p : probs) l.push_back(static_cast<float>(std::log(p)));
  return l;
}

// Draws from p = (0.5, 0.3, 0.2) with `params`: how often each token came.
// 5 standard deviations of a binomial at kDraws = 40000 is below 0.013.
constexpr int kDraws = 40000;
std::vector<int> draw_counts(SamplingParams params) {
  const auto l = logits_for({0.5, 0.3, 0.2});
  Sampler s(params);
  std::vector<int> counts(3);
  for (int i = 0; i < kDraws; ++i) ++counts[s.sample(l)];
  return counts;
}

TEST(Sampler, TemperatureZeroIsArgmax) {
  Sampler s({0.0, 1.0, 1});
  std::vector<float> l = {0.1f, 2.5f, -1.0f, 2.4f};
  for (int i = 0; i < 10; ++i) EXPECT_EQ(s.sample(l), 1);
}

TEST(Sampler, FollowsTheSoftmaxDistribution) {
  // At temperature 1 the empirical frequencies converge to p.
  const auto counts = draw_counts({1.0, 1.0, 42});
  const double n = kDraws;
  EXPECT_NEAR(counts[0] / n, 0.5, 0.013);
  EXPECT_NEAR(counts[1] / n, 0.3, 0.013);
  EXPECT_NEAR(counts[2] / n, 0.2, 0.013);
}

TEST(Sampler, TopPKeepsTheSmallestNucleus) {
  // Nucleus for p = 0.6 over (0.5, 0.3, 0.2) is {0, 1}, renormalised to (0.625, 0.375).
  const auto counts = draw_counts({1.0, 0.6, 7});
  const double n = kDraws;
  EXPECT_EQ(counts[2], 0);
  EXPECT_NEAR(counts[0] / n, 0.625, 0.013);
}

TEST(Sampler, TemperatureSharpens) {
  // At T = 0.5 the probabilities become p^2 / sum p^2 = (25, 9, 4) / 38.
  const auto counts = draw_counts({0.5, 1.0, 9});
  const double n = kDraws;
  EXPECT_NEAR(counts[0] / n, 25.0 / 38.0, 0.013);
  EXPECT_NEAR(counts[2] / n, 4.0 / 38.0, 0.013);
}

TEST(Sampler, SameSeedSameSequence) {
  auto l = logits_for({0.25, 0.25, 0.25, 0.25});
  Sampler a({1.0, 0.9, 123}), b({1.0, 0.9, 123});
  for (int i = 0; i < 100; ++i) EXPECT_EQ(a.sample(l), b.sample(l));
}

TEST(Sampler, RejectsBadParameters) {
  EXPECT_THROW(Sampler({-1.0, 1.0, 0}), Error);
  EXPECT_THROW(Sampler({1.0, 0.0, 0}), Error);
  EXPECT_THROW(Sampler({1.0, 1.5, 0}), Error);
}

}  // namespace
}  // namespace thinkeys
