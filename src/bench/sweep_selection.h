#pragma once
// Which shapes and cache layouts a decode sweep runs, from the names given
// on the command line (empty: the defaults). Unknown names throw Error.
#include <string>
#include <vector>

#include "bench/decode_bench.h"
#include "bench/model_decode_bench.h"

namespace thinkeys {

// Kernel sweep: the non-diagnostic shapes by default, else the named ones in
// the built-in order (diagnostic shapes only by name).
std::vector<DecodeBenchShape> select_decode_bench_shapes(const std::vector<std::string>& names);
// Kernel sweep: every default layout, else the named ones in the given order.
std::vector<DecodeBenchCache> select_decode_bench_caches(const std::vector<std::string>& names);
// Whole-model sweep: gqa and mha by default, else the named ones in the given order.
std::vector<ModelDecodeShape> select_model_decode_shapes(const std::vector<std::string>& names);
std::vector<ModelDecodeCache> select_model_decode_caches(const std::vector<std::string>& names);

}  // namespace thinkeys
