#pragma once
// `thinkeys bench --decode-model`: whole-model decode tokens/s over the paged
// cache at long contexts, full vs thin keys, beside the weight-read bound.
#include <string>
#include <vector>

#include "bench/model_decode_bench.h"

namespace thinkeys::cli {

struct ModelDecodeCliOptions {
  ModelDecodeBenchOptions bench;
  std::vector<std::string> shapes;             // empty: gqa, mha
  std::vector<std::string> caches;             // empty: all
  std::vector<std::string> weights = {"f32"};  // weight formats (model/weight_format.h)
  bool json = false;
};

void run_model_decode_bench(const ModelDecodeCliOptions& options);

}  // namespace thinkeys::cli
