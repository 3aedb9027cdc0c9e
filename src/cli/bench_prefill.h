#pragma once
// `thinkeys bench --prefill-model`: prefill tokens/s of the 12-layer,
// 768-wide Llama shape `--decode-model` builds, one row per weight format,
// the formats prefilled round-robin in one run.
#include <string>
#include <vector>

namespace thinkeys::cli {

struct PrefillCliOptions {
  std::string shape = "mha";
  std::vector<std::string> weights = {"f32", "bf16", "int8"};
  int tokens = 512;
  int repeats = 5;
  int threads = 0;  // 0: all cores
  bool json = false;
};

void run_prefill_bench(const PrefillCliOptions& options);

}  // namespace thinkeys::cli
