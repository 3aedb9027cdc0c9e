// ShareClaims: every unit is taken exactly once however the workers race, a
// worker's own share comes front to back in takes of at most `own` units,
// and others' shares are taken from the back, half of what is left at a
// time.
#include <gtest/gtest.h>

#include <atomic>
#include <thread>
#include <vector>

#include "kernels/share_claims.h"

namespace thinkeys {
namespace {

TEST(ShareClaims, OneWorkerTakesItsShareThenHalvesOfTheOthersFromTheBack) {
  ShareClaims claims;
  claims.reset(10, 2);  // shares [0, 5) and [5, 10)
  std::vector<ShareClaims::Take> takes;
  for (auto t = claims.next(0, 3); t.count > 0; t = claims.next(0, 3)) takes.push_back(t);
  // Own share: 3 then 2. Then [5, 10) from the back: 5 / 2 = 2 -> [8, 10),
  // 3 / 2 = 1 -> [7, 8), then [6, 7) and [5, 6).
  const std::vector<std::pair<int, int>> want{{0, 3}, {3, 2}, {8, 2}, {7, 1}, {6, 1}, {5, 1}};
  ASSERT_EQ(takes.size(), want.size());
  for (std::size_t i = 0; i < want.size(); ++i) {
    EXPECT_EQ(takes[i].first, want[i].first) << i;
    EXPECT_EQ(takes[i].count, want[i].second) << i;
  }
  EXPECT_EQ(claims.next(1, 3).count, 0);  // nothing left for the owner of [5, 10)
}

TEST(ShareClaims, SharesSplitUnevenCountsAndEmptyShares) {
  ShareClaims claims;
  claims.reset(7, 3);  // 7 * s / 3: [0, 2), [2, 4), [4, 7)
  EXPECT_EQ(claims.next(2, 100).first, 4);
  EXPECT_EQ(claims.next(0, 1).first, 0);
  EXPECT_EQ(claims.next(4, 1).first, 2);  // worker 4 owns share 4 % 3 = 1
  claims.reset(1, 4);                     // only share 3 holds a unit
  const auto t = claims.next(0, 8);
  EXPECT_EQ(t.first, 0);
  EXPECT_EQ(t.count, 1);
  EXPECT_EQ(claims.next(3, 8).count, 0);
  claims.reset(0, 2);
  EXPECT_EQ(claims.next(0, 1).count, 0);
}

TEST(ShareClaims, RacingWorkersTakeEveryUnitOnceAndTheirOwnInOrder) {
  constexpr int kWorkers = 4, kUnits = 1000;
  for (int round = 0; round < 200; ++round) {
    ShareClaims claims;
    claims.reset(kUnits, kWorkers);
    std::vector<std::atomic<int>> seen(kUnits);
    std::vector<std::vector<ShareClaims::Take>> got(kWorkers);
    std::atomic<bool> go{false};
    std::vector<std::thread> workers;
    for (int w = 0; w < kWorkers; ++w)
      workers.emplace_back([&, w] {
        while (!go.load()) {
        }
        // Worker 0 is slow, so that the others steal from its share.
        for (auto t = claims.next(w, 1 + w); t.count > 0; t = claims.next(w, 1 + w)) {
          got[w].push_back(t);
          for (int u = t.first; u < t.first + t.count; ++u) seen[u]++;
          if (w == 0) std::this_thread::yield();
        }
      });
    go = true;
    for (auto& t : workers) t.join();
    for (int u = 0; u < kUnits; ++u) ASSERT_EQ(seen[u].load(), 1) << "unit " << u;
    for (int w = 0; w < kWorkers; ++w) {
      // Takes inside the own share come first, front to back and
      // contiguous, each at most `own` units; then only steals.
      const int front = kUnits * w / kWorkers, back = kUnits * (w + 1) / kWorkers;
      int at = front;
      bool stealing = false;
      for (const auto& t : got[w]) {
        const bool own = t.first >= front && t.first < back;
        if (!own) {
          stealing = true;
          continue;
        }
        ASSERT_FALSE(stealing) << "worker " << w << " took from its share after stealing";
        ASSERT_EQ(t.first, at) << "worker " << w;
        ASSERT_LE(t.count, 1 + w);
        at += t.count;
      }
    }
  }
}

}  // namespace
}  // namespace thinkeys
