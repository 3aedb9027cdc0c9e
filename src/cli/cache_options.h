#pragma once
// The paged-cache options every decoding command takes, declared once so
// that eval, generate, chat and serve spell and explain them alike.
#include <string>

#include "cache/cache_footprint.h"

namespace CLI {
class App;
class Option;
}  // namespace CLI

namespace thinkeys::cli {

struct CacheOptions {
  std::string key_dtype = "f16", value_dtype = "f16";
  bool no_key_rotation = false;
  int block_tokens = 64;
  double cache_mb = 1024;  // only where the command offers --cache-mb
  int threads = 0;         // attention threads; 0: all cores
};

// Adds --cache-k, --cache-v, --no-key-rotation, --block-tokens, --threads and,
// with `budget`, --cache-mb to `sub`, writing into `o` (which must outlive
// parsing). `dtype_note` is appended to the dtype help, e.g. "(implies --paged)".
// Returns the --cache-mb option (nullptr without `budget`), for a command
// that offers another way to size the budget.
CLI::Option* add_cache_options(CLI::App* sub, CacheOptions& o, bool budget = true,
                               const std::string& dtype_note = "");

// True when the user gave --cache-k or --cache-v.
bool cache_dtype_given(const CLI::App* sub);

// The cache spec the options describe (dtypes parsed: Error on unknown
// names; budget from --cache-mb).
CacheSpec cache_spec(const CacheOptions& o);

// o.threads, or every core when it is 0.
int attention_threads(const CacheOptions& o);

}  // namespace thinkeys::cli
