#pragma once
// A Prometheus histogram: fixed upper bounds, cumulative counts, sum.
#include <cstdint>
#include <string>
#include <vector>

namespace thinkeys::serve {

class Histogram {
 public:
  explicit Histogram(std::vector<double> bounds);
  // Seconds from 1 ms to 60 s, roughly x2.5 apart (time to first token and
  // between tokens, from a small model on a fast core to a long prefill).
  static Histogram latency();

  void observe(double value);
  uint64_t count() const { return count_; }
  double sum() const { return sum_; }
  // Text exposition format: HELP, TYPE, cumulative _bucket{le=...} lines
  // ending with +Inf, then _sum and _count.
  std::string prometheus(const std::string& name, const std::string& help) const;

 private:
  std::vector<double> bounds_;
  std::vector<uint64_t> counts_;  // per bound, not cumulative; last is +Inf
  uint64_t count_ = 0;
  double sum_ = 0;
};

}  // namespace thinkeys::serve
