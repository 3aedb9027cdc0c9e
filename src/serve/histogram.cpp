#include "serve/histogram.h"

#include <algorithm>
#include <cstdio>

#include "util/error.h"

namespace thinkeys::serve {

Histogram::Histogram(std::vector<double> bounds) : bounds_(std::move(bounds)) {
  if (!std::is_sorted(bounds_.begin(), bounds_.end())) throw Error("histogram bounds must ascend");
  counts_.assign(bounds_.size() + 1, 0);
}

Histogram Histogram::latency() {
  return Histogram(
      {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60});
}

void Histogram::observe(double value) {
  const auto at = std::lower_bound(bounds_.begin(), bounds_.end(), value) - bounds_.begin();
  ++counts_[at];
  ++count_;
  sum_ += value;
}

std::string Histogram::prometheus(const std::string& name, const std::string& help) const {
  std::string out = "# HELP " + name + " " + help + "\n# TYPE " + name + " histogram\n";
  char buf[128];
  uint64_t cumulative = 0;
  for (std::size_t i = 0; i <= bounds_.size(); ++i) {
    cumulative += counts_[i];
    if (i < bounds_.size())
      std::snprintf(buf, sizeof buf, "%s_bucket{le=\"%g\"} %llu\n", name.c_str(), bounds_[i],
                    static_cast<unsigned long long>(cumulative));
    else
      std::snprintf(buf, sizeof buf, "%s_bucket{le=\"+Inf\"} %llu\n", name.c_str(),
                    static_cast<unsigned long long>(cumulative));
    out += buf;
  }
  std::snprintf(buf, sizeof buf, "%s_sum %.9g\n%s_count %llu\n", name.c_str(), sum_, name.c_str(),
                static_cast<unsigned long long>(count_));
  return out + buf;
}

}  // namespace thinkeys::serve
