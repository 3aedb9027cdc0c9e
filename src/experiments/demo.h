#pragma once
// `thinkeys demo`: the whole idea in a couple of minutes on a laptop, with no
// file outside the repository. Small models learn content retrieval among N
// patterns (seed-experiments.md section 2) with full keys and with thin keys;
// the full model's keys are then compressed after training (weight SVD and
// calibrated KQ-SVD) at several ranks. Every variant reports its accuracy on
// fresh sequences and the KV bytes per token of a real cache allocation. When
// the shared directory is present, stories260K adds a real language model:
// perplexity before and after KQ-SVD key compression (RoPE latent, key ratio 1/2).
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace thinkeys {

struct DemoOptions {
  int n = 16;                                      // retrieval keys (8 pairs per sequence)
  int64_t max_steps = 2000;                        // per trained model; early stop once converged
  std::vector<int> thin_d_selects = {8, 4};        // trained thin-key variants (total over 4 heads)
  std::vector<int> compress_ranks = {8, 4, 2, 1};  // key dims per head after compression
  int eval_sequences = 2000;                       // fresh sequences per accuracy
  int calibration_sequences = 512;                 // task sequences for KQ-SVD
  uint64_t seed = 42;
  // stories260K from this directory (models/, data/); unset: skip that part.
  std::optional<std::filesystem::path> shared_dir;
  int64_t story_tokens = 16384;  // scored text (ctx 512, stride 256)
  int jobs = 2;                  // models trained at the same time (one thread each)
  bool show_progress = true;
};

struct DemoRow {
  std::string part;     // "retrieval" or "stories260K"
  std::string variant;  // e.g. "trained, thin keys (d_select 8)"
  int key_width = 0;    // cached key dims per head (layer 0)
  int head_dim = 0;
  double accuracy = -1;           // retrieval: on fresh sequences
  double perplexity = -1;         // stories260K
  double kl = -1, top1 = -1;      // stories260K, against the original
  int64_t steps = 0;              // training steps (trained variants)
  int64_t converge_step = -1;     // first evaluation >= 95% (trained variants)
  double kv_bytes_allocated = 0;  // per token, from a real KVCache (f32)
  int64_t kv_bytes_f16 = 0;       // per token, K and V at 2 bytes each
};

struct DemoResult {
  std::vector<DemoRow> rows;
  std::vector<std::string> notes;  // e.g. why stories260K was skipped
  double seconds = 0;
};

DemoResult run_demo(const DemoOptions& options);

}  // namespace thinkeys
