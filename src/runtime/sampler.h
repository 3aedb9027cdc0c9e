#pragma once
// Next-token choice from logits: greedy at temperature 0, otherwise softmax with
// temperature and nucleus (top-p) truncation, reproducible from a seed.
#include <cstdint>
#include <random>
#include <span>
#include <utility>
#include <vector>

namespace thinkeys {

struct SamplingParams {
  double temperature = 0.0;
  double top_p = 1.0;
  uint64_t seed = 0;
  void validate() const;
};

class Sampler {
 public:
  explicit Sampler(SamplingParams params);
  int32_t sample(std::span<const float> logits);

 private:
  SamplingParams params_;
  std::mt19937_64 rng_;
  std::vector<std::pair<double, int32_t>> scratch_;
};

int32_t argmax(std::span<const float> logits);

}  // namespace thinkeys
