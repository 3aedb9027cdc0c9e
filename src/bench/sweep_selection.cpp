#include "bench/sweep_selection.h"

#include <algorithm>

#include "util/error.h"

namespace thinkeys {

std::vector<DecodeBenchShape> select_decode_bench_shapes(const std::vector<std::string>& names) {
  std::vector<DecodeBenchShape> shapes;
  const std::vector<DecodeBenchShape> known = decode_bench_shapes();
  for (const auto& s : known)
    if (names.empty() ? !s.diagnostic : std::count(names.begin(), names.end(), s.name))
      shapes.push_back(s);
  for (const auto& n : names)
    if (std::none_of(known.begin(), known.end(),
                     [&](const DecodeBenchShape& s) { return s.name == n; }))
      throw Error("unknown decode bench shape '" + n + "' (expected mha, gqa, kv8x1 or kv8x2)");
  return shapes;
}

std::vector<DecodeBenchCache> select_decode_bench_caches(const std::vector<std::string>& names) {
  if (names.empty()) return decode_bench_caches();
  std::vector<DecodeBenchCache> caches;
  for (const auto& n : names) caches.push_back(find_decode_bench_cache(n));
  return caches;
}

std::vector<ModelDecodeShape> select_model_decode_shapes(const std::vector<std::string>& names) {
  if (names.empty()) return model_decode_shapes();
  std::vector<ModelDecodeShape> shapes;
  for (const auto& n : names) shapes.push_back(find_model_decode_shape(n));
  return shapes;
}

std::vector<ModelDecodeCache> select_model_decode_caches(const std::vector<std::string>& names) {
  if (names.empty()) return model_decode_caches();
  std::vector<ModelDecodeCache> caches;
  for (const auto& n : names) caches.push_back(find_model_decode_cache(n));
  return caches;
}

}  // namespace thinkeys
