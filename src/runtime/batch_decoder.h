#pragma once
// Batched decode over the paged KV cache: many sequences of different lengths
// step together (one new token each), and sequences join and leave between
// steps. A new sequence is prefilled with the dense forward pass and its keys
// and values are then encoded into its cache blocks; decode steps run the
// projections and MLP as one batch and attention with the fused kernels.
// This is the interface a server drives; it hands out logits as plain floats,
// so its users need not include libtorch.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "cache/paged_kv_cache.h"
#include "config/cache_layout.h"
#include "config/model_config.h"
#include "kernels/decode_attention.h"
#include "util/work_pool.h"

namespace at {
class Tensor;  // only in private declarations here
}

namespace thinkeys {

struct Model;  // model/weights.h
struct RopeAngles;
class VariantRows;

// Logits of the rows one call decoded: rows() rows of `vocab` floats,
// row-major. A view of the decoder's buffer, valid until its next call.
struct LogitRows {
  std::span<const float> values;
  int vocab = 0;

  int rows() const { return vocab > 0 ? static_cast<int>(values.size() / vocab) : 0; }
  std::span<const float> row(int r) const {
    return values.subspan(static_cast<std::size_t>(r) * vocab, vocab);
  }
};

struct BatchDecoderOptions {
  CacheSpec cache;
  int threads = 1;  // attention threads (sequences x key heads are split over them)
  // Decode steps through the fused path where the architecture allows
  // (runtime/fused_step.cpp); false runs the libtorch forward pass (for A/B).
  bool fused = true;
};

class BatchDecoder {
 public:
  // The model must outlive the decoder.
  BatchDecoder(const Model& model, const BatchDecoderOptions& options);
  ~BatchDecoder();

  // Prefills a new sequence and returns its id; `last_logits` (optional)
  // receives the V logits after the prompt's last token. Throws Error,
  // leaving other sequences untouched, if the pool cannot hold the prompt.
  int add(std::span<const int32_t> prompt, std::vector<float>* last_logits = nullptr);
  void remove(int id);
  int length(int id) const { return cache_.length(id); }

  // For benchmarks only: starts a sequence whose first `length` cached rows
  // are synthetic, so decode can be timed at contexts whose dense prefill
  // would take far too long (32K tokens on 2 cores). Every layer's key and
  // value rows are deterministic pseudo-random values (unit variance, from
  // `seed`) written through the same encoding as add(); they stand for
  // already-rotated keys, so the next step() is position `length`. Only the
  // first kSyntheticPeriod tokens (rounded up to whole blocks) are encoded;
  // later blocks are byte copies of them, since encoding 8 x 32K tokens takes
  // minutes on a loaded 2-core machine and decode speed does not depend on
  // the values. There are no logits for the synthetic prefix. Throws Error,
  // adding nothing, if the pool cannot hold `length` tokens.
  static constexpr int kSyntheticPeriod = 1024;
  int add_synthetic(int length, uint64_t seed);
  // Forgets all but the first `length` cached tokens of a sequence (keeping
  // its blocks), so a benchmark can reuse one long fill at shorter contexts.
  void truncate(int id, int length);

  // Appends tokens[i] to sequence ids[i] (ids distinct) and returns their
  // logits, row i for sequence ids[i]. Throws Error before changing any
  // sequence's length if a token is out of range or the pool cannot grow
  // every sequence by one.
  LogitRows step(std::span<const int> ids, std::span<const int32_t> tokens);

  // Chunked prefill: appends `tokens` to live sequence `id`, every token
  // attending to the sequence's cached prefix (as stored: thin, paged,
  // possibly quantized) and to the chunk's earlier tokens. Extending in
  // chunks equals add() of the whole prompt up to the cache dtype's rounding
  // (exactly, for an f32 cache, up to float summation order). `last_logits`
  // (optional) receives the V logits after the chunk's last token.
  // Throws Error before changing the sequence if a token is out of range,
  // the context would pass the model's learned positions, or the pool cannot
  // hold the chunk.
  void extend(int id, std::span<const int32_t> tokens, std::vector<float>* last_logits = nullptr);

  // For benchmarks only: later steps use `model`, the same model with its
  // matrices in another weight format, so formats are timed over one cache
  // (a 32K-token cache of 8 sequences is 10 GB here). Throws Error if the
  // shapes differ or the model is in latent mode (its key maps are cached).
  void use_model(const Model& model);

  const PagedKVCache& cache() const { return cache_; }
  const ModelConfig& config() const;  // the model's
  // Whether decode steps run the fused path (every batch size does).
  bool uses_fused_step() const { return fused_ != nullptr; }
  const AttentionShape& attention_shape() const { return shape_; }
  // The threads steps run on (benchmarks read their CPU clocks).
  const WorkPool& pool() const { return *pool_; }

 private:
  // Row b is token tokens[b] of sequence ids[b] at position pos[b]; its key
  // and value are written there and it attends to [.., pos[b]]. A sequence
  // may appear in several rows (a prefill chunk, positions ascending).
  // Returns the final hidden states [rows, D], normalized.
  at::Tensor forward_rows(std::span<const int> ids, std::span<const int32_t> tokens,
                          std::span<const int64_t> pos);
  at::Tensor layer_attention(int layer, const at::Tensor& h, const RopeAngles& angles,
                             std::span<const int> ids, std::span<const int64_t> pos_of);
  // MLA / LRKV attention of one layer for rows as forward_rows takes them,
  // from their fused projections qkv [rows][ld_qkv] and the step's RoPE
  // angles cos / sin [rows][ld_angles] (runtime/variant_rows.h): caches each
  // row's key (and value) and writes att [rows][H * head_dim].
  void variant_attention(int layer, std::span<const int> ids, const float* qkv, std::size_t ld_qkv,
                         const float* cos, const float* sin, std::size_t ld_angles,
                         std::span<const int64_t> pos, float* att);
  // The attention tasks of one row's key head `kh` in layer `l` over tokens
  // [begin, end): its G query heads (q, qw floats each) in tasks of at most
  // kMaxQueries over the same keys and values, writing out (head_dim floats
  // a query).
  void add_head_tasks(int l, int id, int kh, const float* q, int qw, const PagedRows* values,
                      int begin, int end, float* out);
  void check_token(int32_t token) const;
  void check_context(int64_t tokens) const;

  // The decode step on plain buffers and the project's own kernels
  // (runtime/fused_step.cpp): no libtorch dispatch or allocation per layer.
  // Every architecture (every RoPE mode, learned positions, MLA, LRKV), any
  // number of rows; writes logits [rows, V] to `logits`.
  struct FusedStep;
  void fused_rows(std::span<const int> ids, std::span<const int32_t> tokens,
                  std::span<const int64_t> pos, float* logits);
  // Its standard attention of one layer (every RoPE mode) into FusedStep::att;
  // angle tables have rows of max_half floats.
  void fused_attention(int layer, std::span<const int> ids, std::span<const int64_t> pos,
                       int max_half);
  std::unique_ptr<FusedStep> fused_;  // null when the options ask for the libtorch pass

  const Model* model_;  // never null; a pointer so use_model can swap it
  PagedKVCache cache_;
  AttentionShape shape_;
  std::shared_ptr<WorkPool> pool_;  // compute_pool() when the thread counts agree
  std::vector<AttentionScratch> scratch_;
  AttentionSplits splits_;  // long contexts with few sequences: split tasks over threads
  std::unique_ptr<RopeSteps> rope_steps_;        // latent mode only
  std::vector<at::Tensor> up_t_;                 // latent: per layer [key heads, r, share*d]
  std::vector<std::vector<LatentKeys>> latent_;  // [layer][key head]
  std::unique_ptr<VariantRows> variant_;         // MLA and LRKV only
  std::vector<float> variant_q_, variant_out_, variant_k_, variant_v_;
  // Reused across steps so the attention call itself does not allocate.
  std::vector<AttentionTask> tasks_;
  std::vector<PagedRows> value_rows_;
  std::vector<const LatentKeys*> task_latent_;
  std::vector<float> logits_;  // what step() returns, grown to the largest batch
};

}  // namespace thinkeys
