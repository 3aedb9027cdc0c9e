#pragma once
// One training run from scratch as the `train` command describes it: the
// step count from a token budget, rank coordination while rank 0 tokenizes,
// validation batches, resume from a checkpoint, and the reports. The CLI fills
// a TrainJob from its options and calls run_training(); the arithmetic is
// exposed so that it can be tested without a model.
#include <cstdint>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "config/model_config.h"
#include "train/model_builder.h"
#include "train/train_config.h"

namespace thinkeys {

struct Batch;  // train/batch.h
class WindowDataset;

struct TrainJob {
  std::string data;       // text file or directory of .txt shards
  std::string valid;      // validation text file; empty: taken from `data`
  std::string tokenizer;  // tokenizer file or directory
  std::string out;        // output directory (model, train_log.jsonl, checkpoint/)
  std::string cache_dir;  // tokenized-data cache; empty: the default
  ArchConfig arch;
  int qk_dim = 0;  // per-head alternative to arch.d_select
  TrainConfig train;
  int64_t tokens = 0;  // token budget; > 0 overrides train.steps
  int eval_batches = 8;
  bool resume = false;  // continue from out/checkpoint when it exists
  bool quiet = false;   // no progress line and no printed plan (JSON output)
};

struct TrainOutcome {
  bool rank0 = true;  // only rank 0 saved the model and reports
  int world_size = 1;
  ModelConfig config;
  int64_t parameters = 0;
  TrainSummary summary;
};

// Tokens one optimizer step consumes over all ranks.
int64_t tokens_per_step(const TrainConfig& config, int world_size, int ctx);
// Whole steps that fit the token budget, at least one.
int64_t steps_for_token_budget(int64_t tokens, int64_t tokens_per_step);
// The budget (when > 0) sets config.steps; warmup never exceeds the steps.
void apply_token_budget(TrainConfig& config, int64_t tokens, int64_t tokens_per_step);
// --qk-dim r means d_select = r * heads; giving both is an error.
ArchConfig with_qk_dim(ArchConfig arch, int qk_dim);
// Up to max_batches batches of batch_size windows in file order.
std::vector<Batch> validation_batches(const WindowDataset& valid, int batch_size, int max_batches);
// The checkpoint to resume from: out/checkpoint when asked and it holds a
// trainer state, otherwise none (a fresh run).
std::optional<std::filesystem::path> resume_checkpoint(const std::filesystem::path& out,
                                                       bool resume);

// Runs the job on this rank (ranks come from RANK/WORLD_SIZE/MASTER_*; see
// data_parallel.h). Rank 0 saves the trained model to job.out.
TrainOutcome run_training(const TrainJob& job);

// The --json summary and the closing lines of the text report.
nlohmann::json train_report_json(const TrainJob& job, const TrainOutcome& outcome);
std::string train_report_text(const TrainJob& job, const TrainOutcome& outcome);

}  // namespace thinkeys
