#pragma once
// Training loop: AdamW, linear warmup + cosine decay to a floor, gradient
// clipping and accumulation, optional data parallelism, periodic validation,
// JSONL logs, a progress line, and checkpoints that resume bit-identically.
//
// Typical use (see src/train/train_job.cpp):
//   Model model = init_model(make_model_config(arch), cfg.seed);
//   WindowDataset data(tokens, seq_len, cfg.seed);   // or any SampleSource
//   cfg.checkpoint_dir = out / "checkpoint";          // optional
//   Trainer trainer(model, cfg, data.source());
//   trainer.set_validation(validation_batches);
//   if (resuming) trainer.load_checkpoint(cfg.checkpoint_dir);
//   trainer.run();                                    // or call step() yourself
//   save_trained_model(inference_model(model), out, tokenizer_dir);  // model_output.h
//
// Losses: LM (targets, kIgnoreIndex = not scored, so synthetic tasks can score
// only some positions) or KD against a teacher. Scope All or QK (trainable.h).
//
// Determinism: the data of step s is a pure function of (seed, sample index),
// the model draws no random numbers, and a checkpoint stores weights (f32),
// AdamW moments and step counts, the sample position and the torch CPU RNG, so
// N steps, or k steps + save + load + N - k steps, give identical bits (same
// thread count and build).
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "model/weights.h"
#include "train/batch.h"
#include "train/train_config.h"
#include "train/trainable.h"

namespace thinkeys {

class DataParallel;

class Trainer {
 public:
  // `model` is prepared for training in place (see trainable.h) and must
  // outlive the trainer; pass it through inference_model() to save or run it.
  Trainer(Model& model, const TrainConfig& config, SampleSource train);
  ~Trainer();
  Trainer(const Trainer&) = delete;
  Trainer& operator=(const Trainer&) = delete;

  // Validation batches, scored by mean token loss (LM) at eval points.
  void set_validation(std::vector<Batch> batches);
  // Teacher for LossKind::KD (must outlive the trainer; its logits carry no gradient).
  void set_teacher(const Model* teacher);
  // Averages gradients across ranks; rank r takes samples r*B.. of each
  // micro-batch's world*B. Broadcasts rank 0's weights at once.
  void set_data_parallel(DataParallel* dp);
  // Called after every step (e.g. for custom evaluation).
  void set_step_callback(std::function<void(const StepStats&)> callback);

  StepStats step();         // one optimizer step
  double validate() const;  // mean validation loss; throws if no validation data
  TrainSummary run();       // steps until config.steps, with logs/evals/checkpoints

  // A checkpoint directory is a loadable HF model (config.json,
  // model.safetensors in f32) plus optimizer.pt, rng.pt and trainer_state.json.
  // Written atomically; in data-parallel runs only rank 0 writes.
  void save_checkpoint(const std::filesystem::path& dir) const;
  // Restores weights, optimizer, RNG and data position; the model must have
  // the same architecture and the run the same global batch.
  void load_checkpoint(const std::filesystem::path& dir);

  int64_t steps_done() const { return step_; }
  int64_t samples_done() const { return samples_; }
  const std::vector<NamedParameter>& parameters() const { return params_; }
  const TrainConfig& config() const { return config_; }

 private:
  void log_line(const std::string& json_line) const;
  at::Tensor micro_batch_loss(const Batch& batch) const;

  struct Optim;
  Model& model_;
  TrainConfig config_;
  SampleSource train_;
  std::vector<Batch> validation_;
  const Model* teacher_ = nullptr;
  DataParallel* dp_ = nullptr;
  std::function<void(const StepStats&)> callback_;
  std::vector<NamedParameter> params_;
  std::unique_ptr<Optim> optim_;
  int64_t step_ = 0, samples_ = 0, tokens_ = 0;
};

}  // namespace thinkeys
