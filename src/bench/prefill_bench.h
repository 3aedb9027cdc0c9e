#pragma once
// Prefill throughput of one model shape held in several weight formats: each
// repeat prefills the same prompt once per format in turn (round-robin), so
// load changes on a shared machine hit the formats alike and the ratios
// between them hold better than the absolute figures.
#include <string>
#include <vector>

namespace thinkeys {

struct Model;  // model/weights.h

struct PrefillCase {
  const Model* model = nullptr;
  std::string weights;  // the format the model's matrices are held as, for the rows
};

struct PrefillRow {
  std::string weights;
  int tokens = 0;
  int repeats = 0;
  double best_s = 0, median_s = 0;
  double cpu_util = 0;  // process CPU seconds / (wall seconds x threads) over the repeats
};

// Prefills `tokens` random tokens into a paged f16 cache (BatchDecoder::add,
// the path generate, chat and serve take) after one untimed warm-up per case.
std::vector<PrefillRow> bench_prefill(const std::vector<PrefillCase>& cases, int tokens,
                                      int repeats, int threads, bool progress);

}  // namespace thinkeys
