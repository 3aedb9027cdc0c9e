#include "bench/round_order.h"

#include <algorithm>

namespace thinkeys {

void round_order(int round, std::span<int> order) {
  const int n = static_cast<int>(order.size());
  if (n == 0) return;
  const int shift = (round / 2) % n;
  for (int k = 0; k < n; ++k) order[k] = (k + shift) % n;
  if (round % 2) std::reverse(order.begin(), order.end());
}

}  // namespace thinkeys
