#pragma once
// The order in which an interleaved benchmark steps its cases in one round.
// A fixed order biases the ratios between cases: swapping the order of two
// caches moved their time ratio by 2-7% (docs/results/decode.md), as each case
// always met the machine in the state its fixed predecessor (or the bandwidth
// probe, which flushes the caches) left. Rotating the start each pair of
// rounds and reversing every other round gives each case every position and
// both neighbours in turn, so the bias spreads over all cases alike.
#include <span>

namespace thinkeys {

// Writes a permutation of 0..order.size()-1 into `order` for round `round`
// (0-based): round 2k is 0..n-1 rotated left by k mod n, round 2k+1 the
// reverse of round 2k.
void round_order(int round, std::span<int> order);

}  // namespace thinkeys
