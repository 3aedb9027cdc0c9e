#pragma once
// Pairwise merging shared by byte-level BPE and llama2.c's tokenizer. Both
// repeatedly merge the best adjacent pair (leftmost among equals) until no pair
// can merge. A heap with lazily discarded stale entries does this in O(n log n),
// so a megabyte-long run (a digit string, a whole llama2.c text, which is never
// pre-split) does not take quadratic time.
#include <cstddef>
#include <cstdint>
#include <optional>
#include <queue>
#include <vector>

namespace thinkeys::detail {

struct PairMerge {
  double priority;  // lower merges first
  int32_t merged_id;
};

// `find(left_id, right_id)` returns the merge for an adjacent pair, or nullopt.
// Because the result depends only on the two ids, a heap entry whose ids and
// adjacency still hold is exactly as good as a fresh one.
template <typename FindMerge>
void merge_pairs(std::vector<int32_t>& ids, FindMerge&& find) {
  const std::size_t n = ids.size();
  if (n < 2) return;
  constexpr std::size_t kNone = static_cast<std::size_t>(-1);
  std::vector<std::size_t> prev(n), next(n);
  std::vector<bool> alive(n, true);
  for (std::size_t i = 0; i < n; ++i) {
    prev[i] = i == 0 ? kNone : i - 1;
    next[i] = i + 1 == n ? kNone : i + 1;
  }

  struct Candidate {
    double priority;
    std::size_t left, right;
    int32_t left_id, right_id, merged_id;
  };
  // Node indices keep input order, so the smallest left index is the leftmost pair.
  auto later = [](const Candidate& a, const Candidate& b) {
    return a.priority != b.priority ? a.priority > b.priority : a.left > b.left;
  };
  std::priority_queue<Candidate, std::vector<Candidate>, decltype(later)> heap(later);
  auto consider = [&](std::size_t l, std::size_t r) {
    if (std::optional<PairMerge> m = find(ids[l], ids[r])) {
      heap.push({m->priority, l, r, ids[l], ids[r], m->merged_id});
    }
  };
  for (std::size_t i = 0; i + 1 < n; ++i) consider(i, i + 1);

  while (!heap.empty()) {
    const Candidate c = heap.top();
    heap.pop();
    if (!alive[c.left] || next[c.left] != c.right || ids[c.left] != c.left_id ||
        ids[c.right] != c.right_id) {
      continue;
    }
    ids[c.left] = c.merged_id;
    alive[c.right] = false;
    next[c.left] = next[c.right];
    if (next[c.right] != kNone) prev[next[c.right]] = c.left;
    if (prev[c.left] != kNone) consider(prev[c.left], c.left);
    if (next[c.left] != kNone) consider(c.left, next[c.left]);
  }

  // Node 0 always survives: merges fold the right node into the left one.
  std::vector<int32_t> merged;
  for (std::size_t i = 0; i != kNone; i = next[i]) merged.push_back(ids[i]);
  ids = std::move(merged);
}

}  // namespace thinkeys::detail
