#include "bench/sweep_selection.h"

#include <algorithm>

#include "util/error.h"

namespace thinkeys {
namespace {

// Every default entry when no names are given, else the named ones in order.
template <class T>
std::vector<T> named_or_all(const std::vector<std::string>& names, std::vector<T> (*all)(),
                            T (*find)(const std::string&)) {
  if (names.empty()) return all();
  std::vector<T> picked;
  for (const auto& n : names) picked.push_back(find(n));
  return picked;
}

}  // namespace

std::vector<DecodeBenchShape> select_decode_bench_shapes(const std::vector<std::string>& names) {
  std::vector<DecodeBenchShape> shapes;
  const std::vector<DecodeBenchShape> known = decode_bench_shapes();
  for (const auto& s : known)
    if (names.empty() ? !s.diagnostic : std::count(names.begin(), names.end(), s.name))
      shapes.push_back(s);
  for (const auto& n : names)
    if (std::none_of(known.begin(), known.end(),
                     [&](const DecodeBenchShape& s) { return s.name == n; }))
      throw Error("unknown decode bench shape '" + n +
                  "' (expected mha, gqa, mha-model, gqa-model, kv8x1 or kv8x2)");
  return shapes;
}

std::vector<DecodeBenchCache> select_decode_bench_caches(const std::vector<std::string>& names) {
  return named_or_all(names, decode_bench_caches, find_decode_bench_cache);
}

std::vector<ModelDecodeShape> select_model_decode_shapes(const std::vector<std::string>& names) {
  return named_or_all(names, model_decode_shapes, find_model_decode_shape);
}

std::vector<ModelDecodeCache> select_model_decode_caches(const std::vector<std::string>& names) {
  return named_or_all(names, model_decode_caches, find_model_decode_cache);
}

}  // namespace thinkeys
