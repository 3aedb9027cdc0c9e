#pragma once
// Fused single-token attention over a paged, possibly thin and quantized KV
// cache. One task is one cached key head of one sequence together with all
// query heads that read it: each block of the sequence is read once, scores
// of every query come from the same decoded rows, an online softmax keeps a
// running max and sum, and values are accumulated in the same pass.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "format/paged_rows.h"
#include "kernels/share_claims.h"

namespace thinkeys {

class WorkPool;

// Latent RoPE mode (docs/design.md section 4): the cache holds c = A^T k of width
// r for `share` KV heads at once; attention rebuilds k = P c (share * d wide),
// rotates each d-wide slice at the key's position (pairs i, i + d/2) and dots
// it with the rotated query.
struct RopeSteps;

struct LatentKeys {
  const float* up_t = nullptr;  // P^T, [r][share * head_dim]: column j of P is contiguous
  int share = 1;
  const RopeSteps* rope = nullptr;  // nullptr: keys are not rotated
};

// Rotation by t positions for t in [0, block_tokens], per frequency, in
// double: the kernel walks the angle of each key by complex multiplication,
// so it needs no sin/cos per token and drifts only by double rounding.
struct RopeSteps {
  int half = 0;  // head_dim / 2
  int block_tokens = 0;
  std::vector<double> inv_freq;  // [half]
  std::vector<double> cos, sin;  // [block_tokens + 1][half]
};
RopeSteps make_rope_steps(std::span<const float> inv_freq, int block_tokens);

struct AttentionTask {
  const float* q = nullptr;  // [n_queries][query width], rotated as the keys will be
  int n_queries = 0;         // query heads reading this key head
  PagedRows keys;
  const PagedRows* values = nullptr;  // n_values value heads; query g uses value
  int n_values = 1;                   // head g / (n_queries / n_values)
  int begin = 0, end = 0;             // attend to tokens [begin, end)
  float* out = nullptr;               // [n_queries][value width]
  // Optional [n_queries]: log of each query's softmax denominator over
  // [begin, end), max included (-inf for an empty range), so that pieces of
  // one task can be merged (AttentionSplits).
  float* lse = nullptr;
  // Optional: the blocks of [begin, end) are shared with other pieces of the
  // same tokens (AttentionSplits); this task attends to the blocks it
  // claims as worker `piece` (possibly none). Heads run together share
  // them. Not for latent keys, whose rotation walks the blocks in order.
  ShareClaims* blocks = nullptr;
  int piece = 0;
};

struct AttentionShape {
  int head_dim = 0;       // d: value width and, in latent mode, rebuilt key width
  int max_queries = 1;    // largest n_queries of any task
  int max_key_width = 0;  // widest cached key row
  int block_tokens = 16;
  float scale = 1.0f;  // multiplies every score (1 / sqrt(head_dim))
  int max_share = 1;   // widest latent key (share * head_dim rebuilt per token)
  // At most this many heads of one sequence run together
  // (decode_attention_heads): the cache's key heads per layer lets a thread
  // stream whole blocks.
  int max_heads = 1;
};

// Per-thread working memory sized once for a shape, so decode steps allocate
// nothing: running state for up to max_heads heads (queries, accumulators,
// softmax max and sum, RoPE angles) and one block's temporaries.
class AttentionScratch {
 public:
  explicit AttentionScratch(const AttentionShape& shape);
  int heads() const { return heads_; }
  float* queries(int h) { return q_.get() + h * q_stride_; }
  float* accum(int h) { return acc_.get() + h * acc_stride_; }
  float* maxes(int h) { return ml_.get() + 2 * h * state_stride_; }
  float* sums(int h) { return maxes(h) + state_stride_; }
  double* rope(int h) { return rope_.get() + 2 * h * rope_half_; }  // cos[half], sin[half]
  int rope_half() const { return static_cast<int>(rope_half_); }
  float* token_angles() { return angles_.get(); }  // block_tokens x (cos[d/2], sin[d/2])
  float* keys() { return k_.get(); }
  float* latents() { return c_.get(); }
  float* values() { return v_.get(); }
  float* scores() { return s_.get(); }
  // Integer scores of int8 keys (decode_attention_integer_scores): head h's
  // queries rounded to int8 levels ([max_queries][padded key width]), one
  // scale per query, and per query and key scale group 128 x the sum of its
  // levels (the keys' levels are offset by 128 to be unsigned).
  int8_t* query_levels(int h) { return reinterpret_cast<int8_t*>(ql_.get()) + h * ql_stride_; }
  float* query_scales(int h) { return qs_.get() + h * state_stride_; }
  int32_t* query_offsets(int h) { return reinterpret_cast<int32_t*>(qo_.get()) + h * qo_stride_; }
  int query_levels_stride() const { return static_cast<int>(ql_stride_ / state_stride_); }
  int query_offsets_stride() const { return static_cast<int>(qo_stride_ / state_stride_); }
  // Per head: how its passes move the prefetch cursor on, worked out once
  // per call rather than per block (three sizes, attention_block-inl.h).
  std::size_t* pacing(int h) { return pace_.get() + 3 * h; }

 private:
  struct Free {
    void operator()(void* p) const;
  };
  using Buffer = std::unique_ptr<float, Free>;
  static Buffer alloc(std::size_t floats);
  int heads_ = 1;
  std::size_t q_stride_ = 0, acc_stride_ = 0, state_stride_ = 0, rope_half_ = 0;
  std::size_t ql_stride_ = 0, qo_stride_ = 0;  // bytes, int32s per head
  Buffer q_, k_, c_, v_, s_, acc_, ml_, angles_, ql_, qs_, qo_;
  std::unique_ptr<double, Free> rope_;
  std::unique_ptr<std::size_t[]> pace_;
};

// Query heads per key head the kernel handles (GQA groups times share).
inline constexpr int kMaxQueries = 64;

// Row stride (floats) of every scratch row: widths rounded up to the widest
// vector so loops need no tails.
inline constexpr int kScratchLanes = 16;
inline int padded(int n) { return (n + kScratchLanes - 1) / kScratchLanes * kScratchLanes; }

// One task on the calling thread. latent may be nullptr (keys are used as
// stored, query width = key width).
void decode_attention(const AttentionShape& shape, const AttentionTask& task,
                      const LatentKeys* latent, AttentionScratch& scratch);

// Several heads of one sequence over the same tokens [begin, end) (at most
// scratch.heads()), in lockstep: block by block, each head's rows of the
// block in turn. Heads' rows are neighbours inside a block, so this reads one
// contiguous stretch per block where head after head would read short runs
// a block apart. Same arithmetic per head as decode_attention.
void decode_attention_heads(const AttentionShape& shape, std::span<const AttentionTask> tasks,
                            std::span<const LatentKeys* const> latents, AttentionScratch& scratch);

// All tasks, split over the pool's threads; scratch has one entry per pool
// thread. latents: empty, or one per task. Consecutive tasks that read the
// same blocks over the same tokens run together, up to shape.max_heads.
void run_decode_attention(const AttentionShape& shape, std::span<const AttentionTask> tasks,
                          std::span<const LatentKeys* const> latents, WorkPool& pool,
                          std::span<AttentionScratch> scratch);

struct HeadRange {
  int first = 0, count = 0;  // tasks [first, first + count)
};

// Runs tasks like run_decode_attention, but first cuts the groups of heads
// run together into pieces of whole blocks when there are too few of them
// for the threads (batch 1 is one group: split by tokens, both threads
// stream). Each piece returns its normalized output and log-sum-exp per
// query; the pieces of a task are merged with the usual softmax rescaling
// (as flash-decoding does). The buffers grow to the largest step seen and
// are then reused, so steady decoding allocates nothing.
class AttentionSplits {
 public:
  // With fewer groups than pool threads, each group becomes one piece per
  // thread (as many as it has blocks, at most), and the pieces take the
  // group's blocks as they go (ShareClaims: each its own share front to
  // back, then half of what another has left); latent groups are cut as
  // below. Otherwise split until there are about per_thread pieces per pool
  // thread, never into pieces shorter than min_blocks blocks, except that a
  // group is cut into as many pieces as it takes to give every thread one,
  // down to pieces of min_blocks / 2; but at least two groups per thread of
  // about one length run whole. Each piece has fixed costs (its first
  // lines read cold, the wait for the last piece, its merge): on 2 threads
  // 1K-4K contexts ran best in pieces of 8 (docs/results/decode.md), but
  // many threads would sit idle beside pieces that long.
  explicit AttentionSplits(int min_blocks = 8, int per_thread = 8);
  void run(const AttentionShape& shape, std::span<const AttentionTask> tasks,
           std::span<const LatentKeys* const> latents, WorkPool& pool,
           std::span<AttentionScratch> scratch);
  // Pieces the last run was cut into (0: it ran whole).
  int last_pieces() const { return static_cast<int>(piece_ranges_.size()); }

 private:
  bool even_enough(const AttentionShape& shape, std::span<const AttentionTask> tasks,
                   int threads) const;
  int min_blocks_, per_thread_;
  std::vector<HeadRange> ranges_, piece_ranges_;
  std::vector<AttentionTask> pieces_;
  std::vector<const LatentKeys*> piece_latents_;
  std::vector<int> first_, count_;  // per range: its pieces in pieces_
  std::vector<float> out_, lse_;
  std::unique_ptr<ShareClaims[]> claims_;  // per range whose pieces claim blocks
  int claims_size_ = 0;
};

// Name of the instruction set the dispatcher picked on this machine.
const char* decode_attention_target();

// Whether the picked instruction set scores int8 keys stored by channel in
// integers: x86 AVX-512 with VNNI and VBMI (Zen 4, Ice Lake on). Each step
// then rounds every query to int8 levels with one scale per query
// (|q - scale * level| <= scale / 2, scale = max|q| / 127) and takes
// exact int32 dot products with the keys' levels, so a score differs from
// the float path's by at most scale / 2 * sum |k| (the stored key's
// magnitudes); f32 scores of keys whose group width or rank is not a
// multiple of 4, and everywhere else.
bool decode_attention_integer_scores();

}  // namespace thinkeys
