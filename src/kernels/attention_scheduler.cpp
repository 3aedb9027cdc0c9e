// Decode attention's scheduling, plain C++ with no SIMD: tasks checked,
// heads that share tokens grouped to run in lockstep, groups spread over the
// work pool, and long sequences split into pieces whose partial results are
// merged by their log-sum-exp. The kernel itself is attend_heads.
#include <algorithm>
#include <cmath>
#include <limits>
#include <memory>
#include <vector>

#include "kernels/attend_heads.h"
#include "kernels/decode_attention.h"
#include "util/error.h"
#include "util/work_pool.h"

namespace thinkeys {

namespace {

void check_task(const AttentionShape& shape, const AttentionTask& task, const LatentKeys* latent) {
  if (task.n_queries < 1 || task.n_queries > shape.max_queries || task.n_values < 1 ||
      task.n_queries % task.n_values != 0)
    throw Error("decode attention: bad query/value head grouping");
  if (latent && (latent->share != task.n_values || task.keys.format.width > shape.max_key_width))
    throw Error("decode attention: latent keys must rebuild one slice per value head");
  if (task.keys.block_tokens != shape.block_tokens || task.begin < 0 || task.end < task.begin)
    throw Error("decode attention: task does not match the cache layout");
}

void check_scratch(const AttentionShape& shape, std::span<AttentionScratch> scratch, int threads) {
  if (static_cast<int>(scratch.size()) < threads)
    throw Error("decode attention needs one scratch per thread");
  for (int t = 0; t < threads; ++t)
    if (scratch[t].heads() < shape.max_heads)
      throw Error("decode attention: scratch was sized for fewer heads than the shape's max_heads");
}

// Heads that may run together: the same sequence's blocks, the same tokens.
bool same_tokens(const AttentionTask& a, const AttentionTask& b) {
  return a.keys.blocks == b.keys.blocks && a.begin == b.begin && a.end == b.end;
}

// Runs of consecutive tasks that read the same blocks over the same tokens,
// at most max_heads long: they run in lockstep (AttendHeads).
void group_heads(const AttentionShape& shape, std::span<const AttentionTask> tasks,
                 std::vector<HeadRange>& out) {
  out.clear();
  for (int i = 0; i < static_cast<int>(tasks.size());) {
    int j = i + 1;
    while (j < static_cast<int>(tasks.size()) && j - i < shape.max_heads &&
           same_tokens(tasks[j], tasks[i]))
      ++j;
    out.push_back({i, j - i});
    i = j;
  }
}

// What both pool runners start with: every task and the scratch checked,
// then the tasks grouped into heads that run together.
void check_and_group(const AttentionShape& shape, std::span<const AttentionTask> tasks,
                     std::span<const LatentKeys* const> latents, const WorkPool& pool,
                     std::span<AttentionScratch> scratch, std::vector<HeadRange>& ranges) {
  check_scratch(shape, scratch, pool.threads());
  for (std::size_t i = 0; i < tasks.size(); ++i)
    check_task(shape, tasks[i], latents.empty() ? nullptr : latents[i]);
  group_heads(shape, tasks, ranges);
}

void attend(const AttentionShape& shape, std::span<const AttentionTask> tasks,
            std::span<const LatentKeys* const> latents, AttentionScratch& scratch) {
  attend_heads(shape, tasks, latents, scratch);
}

void run_ranges(const AttentionShape& shape, std::span<const AttentionTask> tasks,
                std::span<const LatentKeys* const> latents, std::span<const HeadRange> ranges,
                WorkPool& pool, std::span<AttentionScratch> scratch) {
  pool.run(static_cast<int>(ranges.size()), [&](int i, int thread) {
    const HeadRange r = ranges[i];
    attend(shape, tasks.subspan(r.first, r.count),
           latents.empty() ? latents : latents.subspan(r.first, r.count), scratch[thread]);
  });
}

}  // namespace

void decode_attention(const AttentionShape& shape, const AttentionTask& task,
                      const LatentKeys* latent, AttentionScratch& scratch) {
  check_task(shape, task, latent);
  attend(shape, std::span<const AttentionTask>(&task, 1),
         latent ? std::span<const LatentKeys* const>(&latent, 1)
                : std::span<const LatentKeys* const>(),
         scratch);
}

void decode_attention_heads(const AttentionShape& shape, std::span<const AttentionTask> tasks,
                            std::span<const LatentKeys* const> latents, AttentionScratch& scratch) {
  if (static_cast<int>(tasks.size()) > scratch.heads())
    throw Error("decode attention: more heads than the scratch was sized for");
  for (std::size_t i = 0; i < tasks.size(); ++i) {
    check_task(shape, tasks[i], latents.empty() ? nullptr : latents[i]);
    if (!same_tokens(tasks[i], tasks[0]))
      throw Error("decode attention: heads run together must share blocks and tokens");
  }
  attend(shape, tasks, latents, scratch);
}

void run_decode_attention(const AttentionShape& shape, std::span<const AttentionTask> tasks,
                          std::span<const LatentKeys* const> latents, WorkPool& pool,
                          std::span<AttentionScratch> scratch) {
  thread_local std::vector<HeadRange> ranges;  // reused: steady decoding allocates nothing
  check_and_group(shape, tasks, latents, pool, scratch, ranges);
  run_ranges(shape, tasks, latents, ranges, pool, scratch);
}

// Blocks of the cache a task's tokens touch.
static int task_blocks(const AttentionTask& t, int block_tokens) {
  return t.end > t.begin ? (t.end - 1) / block_tokens - t.begin / block_tokens + 1 : 0;
}

// At least two groups per thread, none more than a quarter longer (in
// blocks) than the shortest: claimed in turn, whole groups keep the threads
// level, and cutting them only adds pieces' fixed costs. Batch 4 and 8 on
// 2 threads (each sequence cut in 2-4 pieces before): whole-model steps
// 0.80-0.97x the time, median 0.88 (docs/results/decode.md). Groups of
// different lengths are cut as before, so one long sequence still spreads
// over the threads.
bool AttentionSplits::even_enough(const AttentionShape& shape, std::span<const AttentionTask> tasks,
                                  int threads) const {
  const int n = static_cast<int>(ranges_.size());
  if (n < 2 * threads) return false;
  int shortest = 0, longest = 0;
  for (int i = 0; i < n; ++i) {
    const int blocks = task_blocks(tasks[ranges_[i].first], shape.block_tokens);
    shortest = i == 0 ? blocks : std::min(shortest, blocks);
    longest = std::max(longest, blocks);
  }
  return 4 * longest <= 5 * shortest;
}

AttentionSplits::AttentionSplits(int min_blocks, int per_thread)
    : min_blocks_(std::max(1, min_blocks)), per_thread_(std::max(1, per_thread)) {}

void AttentionSplits::run(const AttentionShape& shape, std::span<const AttentionTask> tasks,
                          std::span<const LatentKeys* const> latents, WorkPool& pool,
                          std::span<AttentionScratch> scratch) {
  check_and_group(shape, tasks, latents, pool, scratch, ranges_);
  const int n = static_cast<int>(ranges_.size());
  const int want = pool.threads() * per_thread_;
  pieces_.clear();
  piece_ranges_.clear();
  if (n == 0 || n >= want || even_enough(shape, tasks, pool.threads()))
    return run_ranges(shape, tasks, latents, ranges_, pool, scratch);

  // Range i becomes count_[i] pieces of whole blocks; piece p of it holds
  // its heads at pieces_[first_[i] + p * heads ...].
  const int BT = shape.block_tokens, per_range = (want + n - 1) / n;
  const int fill = (pool.threads() + n - 1) / n, fill_blocks = std::max(1, min_blocks_ / 2);
  piece_latents_.clear();
  if (claims_size_ < n) {
    claims_ = std::make_unique<ShareClaims[]>(n);
    claims_size_ = n;
  }
  first_.assign(n, 0);
  count_.assign(n, 1);
  std::size_t out_floats = 0, lse_floats = 0;
  for (int i = 0; i < n; ++i) {
    const HeadRange r = ranges_[i];
    const AttentionTask& t0 = tasks[r.first];
    const int b0 = t0.begin / BT, b1 = (t0.end + BT - 1) / BT;
    const int nb = b1 - b0;
    // Fewer groups than threads (batch 1 on 2 threads): one piece per
    // thread, each taking blocks as it goes, so that neither waits for the
    // other (ShareClaims; latent keys are rotated in block order).
    const bool claimed = n < pool.threads() && latents.empty() && nb > 1;
    count_[i] = claimed ? std::min(nb, fill)
                        : std::max(std::clamp(nb / min_blocks_, 1, per_range),
                                   std::min(fill, nb / fill_blocks));
    if (claimed) claims_[i].reset(nb, count_[i]);
    first_[i] = static_cast<int>(pieces_.size());
    for (int p = 0; p < count_[i]; ++p) {
      piece_ranges_.push_back({static_cast<int>(pieces_.size()), r.count});
      for (int h = 0; h < r.count; ++h) {
        const AttentionTask& t = tasks[r.first + h];
        AttentionTask piece = t;
        if (claimed) {
          piece.blocks = &claims_[i];
          piece.piece = p;
        } else if (count_[i] > 1) {
          piece.begin = std::max(t.begin, (b0 + p * nb / count_[i]) * BT);
          piece.end = std::min(t.end, (b0 + (p + 1) * nb / count_[i]) * BT);
        }
        if (count_[i] > 1) {
          out_floats += static_cast<std::size_t>(t.n_queries) * shape.head_dim;
          lse_floats += t.n_queries;
        }
        pieces_.push_back(piece);
        if (!latents.empty()) piece_latents_.push_back(latents[r.first + h]);
      }
    }
  }
  if (out_.size() < out_floats) out_.resize(out_floats);
  if (lse_.size() < lse_floats) lse_.resize(lse_floats);
  std::size_t at_out = 0, at_lse = 0;
  for (int i = 0; i < n; ++i) {
    if (count_[i] == 1) continue;
    const int heads = ranges_[i].count;
    for (int k = 0; k < count_[i] * heads; ++k) {
      AttentionTask& piece = pieces_[first_[i] + k];
      piece.out = out_.data() + at_out;
      piece.lse = lse_.data() + at_lse;
      at_out += static_cast<std::size_t>(piece.n_queries) * shape.head_dim;
      at_lse += piece.n_queries;
    }
  }
  run_ranges(shape, pieces_, piece_latents_, piece_ranges_, pool, scratch);

  // out = sum_p e^{lse_p - M} out_p / sum_p e^{lse_p - M}, per query.
  const int d = shape.head_dim;
  for (int i = 0; i < n; ++i) {
    if (count_[i] == 1) continue;
    const int heads = ranges_[i].count;
    for (int h = 0; h < heads; ++h) {
      const AttentionTask& t = tasks[ranges_[i].first + h];
      auto piece = [&](int p) -> const AttentionTask& {
        return pieces_[first_[i] + p * heads + h];
      };
      for (int g = 0; g < t.n_queries; ++g) {
        float M = -std::numeric_limits<float>::infinity();
        for (int p = 0; p < count_[i]; ++p) M = std::max(M, piece(p).lse[g]);
        float* out = t.out + static_cast<std::size_t>(g) * d;
        std::fill(out, out + d, 0.0f);
        if (M == -std::numeric_limits<float>::infinity()) {
          if (t.lse) t.lse[g] = M;
          continue;
        }
        float z = 0;
        for (int p = 0; p < count_[i]; ++p) {
          const float w = std::exp(piece(p).lse[g] - M);
          z += w;
          const float* o = piece(p).out + static_cast<std::size_t>(g) * d;
          for (int k = 0; k < d; ++k) out[k] += w * o[k];
        }
        for (int k = 0; k < d; ++k) out[k] /= z;
        if (t.lse) t.lse[g] = M + std::log(z);
      }
    }
  }
}

}  // namespace thinkeys
