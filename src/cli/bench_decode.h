#pragma once
// `thinkeys bench --decode`: the decode-attention sweep (contexts x batch
// sizes x cache layouts x model shapes) beside the measured read bandwidth.
#include <string>
#include <vector>

namespace thinkeys::cli {

struct DecodeBenchOptions {
  std::vector<int> ctx = {1024, 4096, 16384, 32768};
  std::vector<int> batch = {1, 8};
  std::vector<std::string> caches;  // empty: all
  std::vector<std::string> shapes;  // empty: all
  int threads = 0;                  // 0: all cores
  int repeats = 3;
  int block_tokens = 64;
  bool huge_pages = true;  // --small-pages turns it off, for A/B runs
  int layers = 32;         // for the attention-only tokens/s column
  bool json = false;
};

void run_decode_bench(const DecodeBenchOptions& options);

}  // namespace thinkeys::cli
