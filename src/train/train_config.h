#pragma once
// What a training run is asked to do and what it reports (the settings of
// train/trainer.h's Trainer), apart from the trainer itself, so code that only
// fills or reads them (the `train` command, train/train_job.h) stays
// libtorch-free.
#include <cstdint>
#include <filesystem>
#include <string>

namespace thinkeys {

enum class TrainScope {
  All,  // every weight
  QK,   // query and key maps only: wq, bq, wk, bk and the thin-key maps k_down, q_down, k_up
};

TrainScope parse_train_scope(const std::string& s);  // "all" or "qk"; throws Error otherwise

enum class LossKind {
  LM,  // next-token cross-entropy on the targets
  KD,  // KL(teacher || student) on the positions the targets score (needs a teacher)
};
LossKind parse_loss_kind(const std::string& s);  // "lm" or "kd"

struct TrainConfig {
  int64_t steps = 1000;  // optimizer steps
  int batch_size = 8;    // sequences per micro-batch (per rank)
  int grad_accum = 1;    // micro-batches per optimizer step
  double lr = 3e-4;      // peak learning rate
  int64_t warmup_steps = 100;
  double min_lr_ratio = 0.1;  // cosine decays to lr * min_lr_ratio at the last step
  double weight_decay = 0.1;  // decoupled; applied to matrices only, not to norms/biases
  double beta1 = 0.9, beta2 = 0.95, adam_eps = 1e-8;
  double grad_clip = 1.0;  // max global L2 norm; 0 disables clipping
  uint64_t seed = 42;      // data order (and whatever else draws randomness)
  TrainScope scope = TrainScope::All;
  LossKind loss = LossKind::LM;
  int64_t eval_every = 0;         // validate every N steps (and at the end); 0: only at the end
  int64_t checkpoint_every = 0;   // checkpoint every N steps (and at the end); 0: only at the end
  int64_t log_every = 10;         // JSONL/console line every N steps
  std::filesystem::path out_dir;  // train_log.jsonl goes here; empty: no log file
  std::filesystem::path checkpoint_dir;  // checkpoints go here; empty: none
  bool show_progress = true;             // progress line on a terminal (stderr)
  bool print_log = false;                // also print log lines (JSON) to stdout

  void validate() const;  // throws Error naming the bad field
};

// Learning rate of (0-based) step `step`: linear warmup to lr over
// warmup_steps, then cosine to lr * min_lr_ratio at step `steps - 1`.
double learning_rate(const TrainConfig& config, int64_t step);

struct StepStats {
  int64_t step = 0;      // steps completed, including this one
  double loss = 0;       // mean over the step's micro-batches (and ranks)
  double grad_norm = 0;  // global norm before clipping
  double lr = 0;
  int64_t tokens = 0;  // tokens processed so far (all ranks)
  double seconds = 0;  // wall time of this step
};

struct TrainSummary {
  int64_t steps = 0;
  double final_loss = 0;         // last step's training loss
  double final_val_loss = -1;    // -1 when there is no validation data
  double tokens_per_second = 0;  // over this run (all ranks)
  int64_t tokens = 0;            // tokens processed in this run
  double seconds = 0;
};

}  // namespace thinkeys
