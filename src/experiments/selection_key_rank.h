#pragma once
// How far a trained full-width selection model's keys compress after
// training: KQ-SVD (calibrated on training-side task sequences) at every key
// rank per head from 1 to head_dim - 1, each compressed model's accuracy on
// the run's test stream, and the smallest rank that keeps the run's
// threshold. Issue 22 item 4 sets this next to the smallest d_select that
// learns the task from scratch: capacity (what the trained function needs)
// apart from optimisation (what training finds at a given width).
#include "experiments/selection_experiment.h"

namespace thinkeys {

struct Model;

// `full` is the trained model of `run` (resolved, full width). Test
// sequences: samples 0..test_sequences-1 of selection_test_seed(run.seed),
// held-out ones only when run.held_out. Calibration: 512 sequences of another
// stream, from the training split.
KeyRankSearch search_kqsvd_key_rank(const Model& full, const SelectionRun& run, int test_sequences);

}  // namespace thinkeys
