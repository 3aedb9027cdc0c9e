#pragma once
// Decode-attention benchmark over the paged cache: one layer of an MHA- or
// GQA-shaped model, `batch` sequences of `ctx` tokens, one decode step's
// attention timed (best of several). Reports the cached bytes each step reads
// and the resulting bandwidth, for comparison with the read-bandwidth probe.
#include <cstdint>
#include <string>
#include <vector>

#include "format/cache_dtype.h"

namespace thinkeys {

class StreamBuffer;

struct DecodeBenchShape {
  std::string name;  // "mha", "gqa", ...
  int n_heads = 32, n_kv_heads = 32, head_dim = 128;
  // Run only when asked for by name: kv8x1 and kv8x2 read the gqa shape's
  // cache with 1 and 2 query heads per KV head, the same bytes with a quarter
  // and a half of the arithmetic, to show what the arithmetic costs.
  bool diagnostic = false;
};

struct DecodeBenchCache {
  std::string name;        // e.g. "thin-int4"
  double key_ratio = 1.0;  // r = key_ratio * head_dim
  CacheDType key_dtype = CacheDType::F16, value_dtype = CacheDType::F16;
  bool latent = false;  // cache the latent, rebuild and rotate keys in the kernel
  // Keys stored token by token instead of by channel
  // (CacheSpec::keys_by_channel): the same bytes scored a row at a time. Run
  // only when asked for by name (full-f16-bytoken, thin-f16-bytoken,
  // thin-int8-bytoken, thin-int4-bytoken; also r24-f16 and r24-f16-bytoken,
  // a thin width of 24 that is not a whole number of vectors).
  bool keys_by_token = false;
};

struct DecodeBenchRow {
  std::string shape, cache;
  int ctx = 0, batch = 0, key_width = 0;
  int head_dim = 0, n_heads = 0, n_kv_heads = 0;
  int64_t bytes_read = 0;  // cached bytes per layer-step
  double seconds = 0;      // attention of one layer, one step, all sequences
  double gb_per_s = 0;
  // The pool's CPU seconds over the best run, and their share of its time
  // on every thread (bench/cpu_clock.h): below 1 on a shared machine means
  // the kernel did not get its cores.
  double cpu_seconds = 0, cpu_util = 0;
  // Read bandwidth of the cache-evicting streams run right before each
  // repetition (best of them): the machine's bandwidth next to this cell.
  double probe_gb_per_s = 0;
  // The same call repeated with nothing evicted in between (best of as many
  // repetitions): the cache from L2 / L3 where it fits, so set beside
  // `seconds` it shows how much of the time is the kernel's arithmetic and
  // how much its loads fail to overlap it.
  double resident_seconds = 0;
};

std::vector<DecodeBenchShape>
decode_bench_shapes();  // mha, gqa (7B-like), mha-model, gqa-model, ...
std::vector<DecodeBenchCache> decode_bench_caches();                // full-f16 ... latent
std::vector<DecodeBenchCache> decode_bench_diagnostic_caches();     // *-bytoken, r24-f16
DecodeBenchCache find_decode_bench_cache(const std::string& name);  // throws Error

// Every repetition starts with a full read of `flush` (at least twice the
// last-level cache), so the step reads its cache from DRAM as it would in a
// model whose other layers ran in between; without it a small cache would be
// timed from L3.
DecodeBenchRow bench_decode_attention(const DecodeBenchShape& shape, const DecodeBenchCache& cache,
                                      int ctx, int batch, StreamBuffer& flush, int repeats,
                                      int block_tokens = 64, bool huge_pages = true);

}  // namespace thinkeys
