#pragma once
// The paper's synthetic selection experiments (seed-experiments.md sections 1
// and 2): train the small pre-LN GPT-2-style model from scratch on a selection
// task at a given d_select (total query/key width over heads), evaluate argmax
// accuracy on fresh sequences every 100 steps, and record the best accuracy
// and the first evaluation step at or above the threshold. A sweep over
// d_select and the number of patterns N shows how wide the keys must be.
//
// Weights start from PyTorch's default initialisation, as in the paper (the
// task is sensitive to it). Differences from the paper's code, documented in
// docs/results/selection.md: GELU is the tanh form; the attention
// scale is 1/sqrt(head_dim) for every d_select (the runtime's convention,
// which keeps post-training key compression exact) instead of 1/sqrt(d_qk);
// and a run may stop early once it has converged and held the threshold.
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "experiments/selection_tasks.h"

namespace thinkeys {

struct Model;

struct SelectionRun {
  SelectionTask task = SelectionTask::Retrieval;
  int n = 16;         // retrieval: keys (= values); position: vocabulary size
  int pairs = 0;      // retrieval pairs per sequence; 0: default_retrieval_pairs(n)
  int d_select = 64;  // total query/key width over heads; dim means full attention
  int layers = 0;     // 0: task default (position 2 as the paper states, retrieval 4)
  int dim = 64, heads = 4, hidden = 128;
  int64_t steps = 0;  // 0: task default (position 1500, retrieval 3000)
  int batch = 0;      // 0: task default (position 32, retrieval 64)
  double lr = 1e-3;   // Adam, constant
  int64_t eval_every = 100;
  int eval_sequences = 0;  // 0: task default (position 128, retrieval 512)
  double threshold = 0;    // 0: task default (position 0.99, retrieval 0.95)
  // Stop once converged and the next `hold` evaluations also reach the
  // threshold; negative: always train all steps.
  int hold = 2;
  uint64_t seed = 42;  // model init and training data; evaluation uses a derived stream
  // Train only on sequences outside the held-out class and evaluate only on
  // held-out ones (SampleSplit), so no evaluation sequence can have been
  // trained on. false: the original streams (disjoint by seed, not by construction).
  bool held_out = false;

  // Fills the task defaults and checks everything (throws Error naming the
  // problem, e.g. d_select not divisible by heads or N < 2).
  SelectionRun resolved() const;
};

struct EvalPoint {
  int64_t step = 0;
  double accuracy = 0;
};

// The smallest KQ-SVD key rank that keeps a trained full-width model at the
// threshold (src/experiments/selection_key_rank.h).
struct KeyRankPoint {
  int rank_per_head = 0;
  int key_width_total = 0;  // over all heads: comparable with d_select
  double accuracy = 0;      // compressed model, test sequences
};

struct KeyRankSearch {
  int test_sequences = 0;
  double full_accuracy = 0;          // the uncompressed model on the same test sequences
  int smallest_rank_per_head = -1;   // first rank (ascending) at the threshold; -1: none
  std::vector<KeyRankPoint> points;  // every rank 1 .. head_dim - 1, ascending
};

struct SelectionRunResult {
  SelectionRun run;  // resolved
  double best_accuracy = 0;
  int64_t converge_step = -1;  // first evaluation step >= threshold; -1: never
  int64_t steps_run = 0;
  bool stopped_early = false;
  double final_loss = 0;  // last training step's loss
  double seconds = 0;
  std::vector<EvalPoint> evals;
  std::optional<KeyRankSearch> key_rank;  // full-width runs of a sweep with key_rank_search
};

// Trains one model. `on_step` (if set) is called after every optimizer step.
// When `trained` is given it receives the trained, runtime-ready model.
SelectionRunResult run_selection(const SelectionRun& run,
                                 const std::function<void(int64_t step)>& on_step = {},
                                 Model* trained = nullptr);

// Argmax accuracy of `model` over the scored positions of `count` fresh task
// sequences (samples first.. of the stream for `seed`; held-out sequences
// only when run.held_out). Works for any model the training forward runs,
// including compressed ones.
double selection_accuracy(const Model& model, const SelectionRun& run, uint64_t seed, int64_t first,
                          int count);

// Samples of the run's task (any task, N and pairs) from `split`.
Batch selection_batch(const SelectionRun& run, uint64_t seed, int64_t first, int count,
                      SampleSplit split);

// The split training draws from and the one evaluations draw from.
SampleSplit selection_train_split(const SelectionRun& run);
SampleSplit selection_eval_split(const SelectionRun& run);

// Seed of the evaluation stream for a run seed (another stream than training).
uint64_t selection_eval_seed(uint64_t seed);
// Seed of the test stream: used after training, by neither training nor its evaluations.
uint64_t selection_test_seed(uint64_t seed);

struct SweepOptions {
  bool position = true, retrieval = true;
  std::vector<int> ns = {4, 8, 16, 32, 64};  // retrieval N values
  std::vector<int> d_selects = {4, 8, 16, 32, 64};
  SelectionRun base;  // everything else (steps, seed, hold, ...); task/n/d_select are set per run
  // Retrieval: false runs d_select in ascending order for each N and stops at
  // the first that converges (wider keys only add capacity; the paper's
  // tables are monotone), which is what "smallest d_select" needs and skips
  // the most expensive part of the grid. true runs every (N, d_select).
  bool full_grid = false;
  // After each full-width run (d_select == dim), search the smallest KQ-SVD
  // key rank at the threshold on `test_sequences` test-stream sequences.
  bool key_rank_search = false;
  int test_sequences = 2000;
  // Runs trained at the same time, one (task, N) group per thread. Each run
  // is single-threaded work on tiny matrices, so groups scale across cores.
  int jobs = 1;
  bool show_progress = true;
};

struct SweepSummary {
  SelectionTask task = SelectionTask::Retrieval;
  int n = 0;
  double log2_n = 0;
  int smallest_d_select = -1;  // smallest swept d_select that converged; -1: none
  int heads = 0;
  std::vector<int> skipped;               // d_selects not run (wider than the first converged)
  int smallest_kqsvd_rank_per_head = -1;  // from the full-width run's key-rank search; -1: none
};

struct SweepResult {
  std::vector<SelectionRunResult> runs;  // position runs first, then retrieval by N
  std::vector<SweepSummary> summary;     // one per task/N
  double seconds = 0;
};

// The runs of a full grid, in execution order (resolved; throws on bad
// options); run_sweep() may skip some of them (see full_grid).
std::vector<SelectionRun> plan_sweep(const SweepOptions& options);
SweepResult run_sweep(const SweepOptions& options);

}  // namespace thinkeys
