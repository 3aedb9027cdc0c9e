#include "runtime/sampler.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "util/error.h"

namespace thinkeys {

void SamplingParams::validate() const {
  if (!(temperature >= 0.0) || !std::isfinite(temperature))
    throw Error("temperature must be >= 0 (0 means greedy)");
  if (!(top_p > 0.0 && top_p <= 1.0)) throw Error("top-p must be in (0, 1]");
}

Sampler::Sampler(SamplingParams params) : params_(params), rng_(params.seed) { params_.validate(); }

int32_t argmax(std::span<const float> logits) {
  return static_cast<int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin());
}

int32_t Sampler::sample(std::span<const float> logits) {
  if (logits.empty()) throw Error("sampler: empty logits");
  if (params_.temperature == 0.0) return argmax(logits);
  const double max_logit = *std::max_element(logits.begin(), logits.end());
  scratch_.clear();
  double total = 0.0;
  for (size_t i = 0; i < logits.size(); ++i) {
    double p = std::exp((logits[i] - max_logit) / params_.temperature);
    total += p;
    scratch_.emplace_back(p, static_cast<int32_t>(i));
  }
  size_t keep = scratch_.size();
  if (params_.top_p < 1.0) {
    // Smallest set of most likely tokens whose mass reaches top_p.
    std::sort(scratch_.begin(), scratch_.end(), [](auto& a, auto& b) {
      return a.first > b.first || (a.first == b.first && a.second < b.second);
    });
    double cumulative = 0.0;
    for (size_t i = 0; i < scratch_.size(); ++i) {
      cumulative += scratch_[i].first / total;
      if (cumulative >= params_.top_p) {
        keep = i + 1;
        break;
      }
    }
    total = 0.0;
    for (size_t i = 0; i < keep; ++i) total += scratch_[i].first;
  }
  double u = std::uniform_real_distribution<double>(0.0, total)(rng_);
  for (size_t i = 0; i < keep; ++i) {
    u -= scratch_[i].first;
    if (u <= 0.0) return scratch_[i].second;
  }
  return scratch_[keep - 1].second;
}

}  // namespace thinkeys
