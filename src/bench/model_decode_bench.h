#pragma once
// Whole-model decode at long context: BatchDecoder::step over the paged cache,
// i.e. every layer's projections, attention and MLP plus the LM head, for
// `batch` sequences of `ctx` cached tokens. The cached prefix is synthetic
// (BatchDecoder::add_synthetic): dense prefill of 32K tokens is far too slow
// here, and decode speed does not depend on what the cached rows hold.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "config/model_config.h"
#include "format/cache_dtype.h"

namespace thinkeys {

struct Model;  // model/weights.h

struct ModelDecodeShape {
  std::string name;  // "gqa", "mha", "mla", "lrkv"
  int kv_heads = 0;
  AttentionKind attention = AttentionKind::Standard;
};

struct ModelDecodeCache {
  std::string name;     // e.g. "thin-int4"
  int key_divisor = 1;  // key rank = head_dim / key_divisor (RoPE on the thin key, Full mode)
  CacheDType key_dtype = CacheDType::F16;
  // f16 keys stored token by token (CacheSpec::keys_by_channel off); only by
  // name: full-f16-bytoken, thin-f16-bytoken.
  bool keys_by_token = false;
};

// 12 layers, width 768, 12 query heads of 64, SwiGLU 2048, vocab 32000, RoPE,
// untied head; gqa: 4 KV heads, mha: 12. Only by name: mla (latent 256 and a
// 32-wide RoPE key cached, per-head query/key 64 + 32, DeepSeek-V2's latent of
// four heads' width) and lrkv (rank 16: a 64 + 12 x 16 = 256-wide key and
// value row cached).
std::vector<ModelDecodeShape> model_decode_shapes();
ModelConfig model_decode_config(const ModelDecodeShape& shape, int key_divisor);
// The benchmarks' random model of that configuration (seed 17, so every weight
// format holds the same model) with its matrices held as `weights` (a
// parse_weight_format name); shared, so callers need not include libtorch.
std::shared_ptr<const Model> model_decode_model(const ModelDecodeShape& shape, int key_divisor,
                                                const std::string& weights);
std::vector<ModelDecodeCache> model_decode_caches();  // full-f16, thin-f16, thin-int8, thin-int4
ModelDecodeCache find_model_decode_cache(const std::string& name);  // throws Error
ModelDecodeShape find_model_decode_shape(const std::string& name);  // throws Error
// Whether a cache layout applies to a shape: MLA and LRKV cache their own
// rows (full width only), and MLA's values read its keys (float keys only).
bool model_decode_cache_applies(const ModelDecodeShape& shape, const ModelDecodeCache& cache);

struct ModelDecodeRow {
  std::string shape, cache, weights;  // weights: what the model's matrices are held as
  int ctx = 0, batch = 0, key_width = 0;
  int steps = 0;              // timed steps (after one warm-up step)
  int64_t weight_bytes = 0;   // weights one step reads (embedding table excluded)
  int64_t kv_bytes_read = 0;  // cached key/value bytes (scales included) one step reads
  double best_s = 0, median_s = 0;
  // Each round a case runs two steps back to back and times the second, as a
  // generate or serving loop runs them; the first (the lead-in) follows the
  // probe (during which the pool's worker went to sleep) or another case's
  // steps (whose pages fill the TLB and caches), and its median is kept to
  // show what that costs.
  double lead_in_median_s = 0;
  // The decoder's threads' CPU seconds / (wall seconds x threads) over the
  // timed steps (bench/cpu_clock.h): below 1 on a shared machine means the
  // step did not get its cores.
  double cpu_util = 0;
  // Those CPU seconds per timed step (mean): the work a step costs, without
  // the time spent waiting for a core on a loaded machine.
  double cpu_s_per_step = 0;
  // The host's memory bandwidth changes between runs and within one (seen
  // here: 33 and 60 GB/s a few seconds apart), so a probe before and after a
  // run is no bound for a step in its middle. Each round of steps is followed
  // by a read of a buffer far larger than the caches; a step's fraction of the
  // bound is taken against the probe of its own round, and these are the
  // medians over the timed rounds.
  double round_probe_gb_s = 0;
  double fraction_of_round_probe = 0;
  bool interleaved = false;  // stepped round-robin with the other layouts of its model shape
  bool skipped = false;
  std::string note;  // why a row was skipped
};

struct ModelDecodeBenchOptions {
  std::vector<int> ctx = {1024, 4096, 16384, 32768};
  std::vector<int> batch = {1, 8};
  int threads = 2;     // attention threads; BLAS threads are set globally
  int steps = 5;       // timed steps below 16K context
  int long_steps = 3;  // timed steps at 16K context and beyond
  int block_tokens = 64;
  double memory_fraction = 0.7;  // of MemAvailable the cache may take
  bool progress = true;          // one line per row on stderr
};

struct ModelDecodeCase {
  const Model* model = nullptr;  // built by model_decode_config with the cache's key divisor
  ModelDecodeCache cache;
  std::string weights = "f32";  // the model's weight format, for the rows
};

// Bytes of cache pool one case holds (max(batch) sequences of max(ctx) tokens
// plus the timed steps).
std::size_t model_decode_cache_bytes(const ModelDecodeCase& c, const ModelDecodeBenchOptions& o);

// Fills max(batch) synthetic sequences of max(ctx) tokens once per case, then
// times each (ctx, batch) after truncating to ctx, longest first, stepping
// the cases round-robin. Returns skipped rows (with a note) if the caches
// together would not fit in memory. Rows are grouped by case.
std::vector<ModelDecodeRow> bench_model_decode(const std::string& shape_name,
                                               const std::vector<ModelDecodeCase>& cases,
                                               const ModelDecodeBenchOptions& options);

}  // namespace thinkeys
