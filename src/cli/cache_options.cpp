#include "cli/cache_options.h"

#include <CLI/CLI.hpp>
#include <algorithm>
#include <thread>

namespace thinkeys::cli {

CLI::Option* add_cache_options(CLI::App* sub, CacheOptions& o, bool budget,
                               const std::string& dtype_note) {
  const std::string note = dtype_note.empty() ? "" : " " + dtype_note;
  sub->add_option("--cache-k", o.key_dtype,
                  "Paged cache key dtype: f32, f16, bf16, int8, int4" + note);
  sub->add_option("--cache-v", o.value_dtype,
                  "Paged cache value dtype: f32, f16, bf16, int8, int4" + note);
  sub->add_flag("--no-key-rotation", o.no_key_rotation,
                "Store int8/int4 keys as they are instead of Hadamard-rotated (rotation "
                "spreads an outlier channel over the row before the group scale is taken)");
  sub->add_option("--block-tokens", o.block_tokens, "Paged cache tokens per block")
      ->check(CLI::Range(1, 4096));
  CLI::Option* mb = nullptr;
  if (budget)
    mb = sub->add_option("--cache-mb", o.cache_mb, "Paged cache budget in MiB")
             ->check(CLI::PositiveNumber)
             ->capture_default_str();
  sub->add_option("--threads", o.threads, "Attention threads (default: all cores)");
  return mb;
}

bool cache_dtype_given(const CLI::App* sub) {
  return sub->count("--cache-k") > 0 || sub->count("--cache-v") > 0;
}

CacheSpec cache_spec(const CacheOptions& o) {
  CacheSpec s;
  s.key_dtype = parse_cache_dtype(o.key_dtype);
  s.value_dtype = parse_cache_dtype(o.value_dtype);
  s.rotate_keys = !o.no_key_rotation;
  s.block_tokens = o.block_tokens;
  s.budget_bytes = static_cast<std::size_t>(o.cache_mb * (1 << 20));
  return s;
}

int attention_threads(const CacheOptions& o) {
  return o.threads > 0 ? o.threads
                       : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
}

}  // namespace thinkeys::cli
