#include "train/train_job.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <memory>

#include "tokenizer/tokenizer.h"
#include "train/data_parallel.h"
#include "train/model_output.h"
#include "train/trainable.h"
#include "train/trainer.h"
#include "train/training_data.h"
#include "train/window_dataset.h"
#include "util/error.h"

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace thinkeys {

int64_t tokens_per_step(const TrainConfig& config, int world_size, int ctx) {
  return static_cast<int64_t>(config.batch_size) * config.grad_accum * world_size * ctx;
}

int64_t steps_for_token_budget(int64_t tokens, int64_t tokens_per_step) {
  return std::max<int64_t>(1, tokens / tokens_per_step);
}

void apply_token_budget(TrainConfig& config, int64_t tokens, int64_t tokens_per_step) {
  if (tokens > 0) config.steps = steps_for_token_budget(tokens, tokens_per_step);
  config.warmup_steps = std::min(config.warmup_steps, config.steps);
}

ArchConfig with_qk_dim(ArchConfig arch, int qk_dim) {
  if (qk_dim > 0) {
    if (arch.d_select > 0) throw Error("give --d-select or --qk-dim, not both");
    arch.d_select = qk_dim * arch.n_heads;
  }
  return arch;
}

std::vector<Batch> validation_batches(const WindowDataset& valid, int batch_size, int max_batches) {
  std::vector<Batch> batches;
  for (int64_t w = 0; w < valid.windows() && static_cast<int>(batches.size()) < max_batches;
       w += batch_size)
    batches.push_back(valid.windows_in_order(w, batch_size));
  return batches;
}

std::optional<fs::path> resume_checkpoint(const fs::path& out, bool resume) {
  const fs::path ckpt = out / "checkpoint";
  if (resume && fs::exists(ckpt / "trainer_state.json")) return ckpt;
  return std::nullopt;
}

namespace {

void print_plan(const ModelConfig& mc, int64_t params, const WindowDataset& train, int ctx,
                size_t valid_batches, bool held_out, const TrainConfig& tc, int64_t step_tokens,
                int world, int64_t resumed_at) {
  std::printf(
      "model    %s, %d layers, width %d, %d heads (%d KV), head dim %d, key "
      "width %d per head, %s attention, %.2fM parameters, KV %lld B/token (f16)\n",
      mc.model_type.c_str(), mc.n_layers, mc.dim, mc.n_heads, mc.n_kv_heads, mc.head_dim,
      mc.key_width(0), to_string(mc.attention.kind), static_cast<double>(params) / 1e6,
      static_cast<long long>(mc.kv_bytes_per_token(2, 2)));
  std::printf(
      "data     %lld training tokens (%lld windows of %d), %zu validation "
      "batches%s\n",
      static_cast<long long>(train.tokens()), static_cast<long long>(train.windows()), ctx,
      valid_batches, held_out ? " (held out from training data)" : "");
  std::printf("schedule %lld steps x %lld tokens (batch %d x accum %d x ranks %d)%s\n",
              static_cast<long long>(tc.steps), static_cast<long long>(step_tokens), tc.batch_size,
              tc.grad_accum, world,
              resumed_at > 0 ? (", resuming at step " + std::to_string(resumed_at)).c_str() : "");
  std::fflush(stdout);
}

}  // namespace

TrainOutcome run_training(const TrainJob& job) {
  DataParallelOptions dpo = data_parallel_options_from_env();
  const bool rank0 = dpo.rank == 0;
  ArchConfig arch = with_qk_dim(job.arch, job.qk_dim);
  if (!fs::exists(job.data)) throw Error("training data " + job.data + " not found");

  {
    // Architecture errors first: loading a tokenizer can take seconds.
    ArchConfig check = arch;
    check.vocab_size = 1;
    make_model_config(check);
    job.train.validate();
  }
  auto tok = load_tokenizer(job.tokenizer);
  arch.vocab_size = tok->vocab_size();
  arch.bos_id = tok->bos_id();
  arch.eos_id = tok->eos_id();
  ModelConfig mc = make_model_config(arch);  // bad architectures fail before tokenizing
  TrainConfig tc = job.train;
  tc.validate();
  const int world = dpo.world_size;
  const int64_t step_tokens = tokens_per_step(tc, world, arch.ctx);
  apply_token_budget(tc, job.tokens, step_tokens);
  tc.out_dir = job.out;
  tc.checkpoint_dir = fs::path(job.out) / "checkpoint";
  tc.show_progress = !job.quiet && rank0;
  tc.print_log = false;

  // Rank 0 tokenizes (and fills the cache) while the others wait, then
  // they read the cache instead of repeating the work.
  dpo.timeout_seconds = 1800;
  std::unique_ptr<DataParallel> dp;
  if (world > 1) dp = std::make_unique<DataParallel>(dpo);
  if (dp && !rank0) dp->barrier();
  TokenizeOptions topts;
  topts.cache_dir = job.cache_dir;
  topts.show_progress = !job.quiet && rank0;
  TextData data =
      load_text_data(job.data, job.valid, *tok, tokenizer_fingerprint(*tok, job.tokenizer), topts);
  if (dp && rank0) dp->barrier();
  WindowDataset train(std::move(data.train), arch.ctx, tc.seed);
  std::vector<Batch> valid;
  if (static_cast<int>(data.valid.size()) > arch.ctx) {
    WindowDataset v(std::move(data.valid), arch.ctx, tc.seed, /*shuffle=*/false);
    valid = validation_batches(v, tc.batch_size, job.eval_batches);
  }

  Model model = init_model(mc, tc.seed);
  TrainOutcome outcome;
  outcome.rank0 = rank0;
  outcome.world_size = world;
  outcome.config = mc;
  outcome.parameters = model.parameter_count();
  Trainer trainer(model, tc, train.source());
  const size_t n_valid = valid.size();
  trainer.set_validation(std::move(valid));
  if (dp) trainer.set_data_parallel(dp.get());
  if (auto ckpt = resume_checkpoint(job.out, job.resume)) trainer.load_checkpoint(*ckpt);
  if (rank0 && !job.quiet)
    print_plan(mc, outcome.parameters, train, arch.ctx, n_valid, data.valid_held_out, tc,
               step_tokens, world, trainer.steps_done());
  outcome.summary = trainer.run();
  if (rank0) save_trained_model(inference_model(model), job.out, job.tokenizer);
  return outcome;
}

json train_report_json(const TrainJob& job, const TrainOutcome& outcome) {
  const TrainSummary& s = outcome.summary;
  json j = {{"out", job.out},
            {"steps", s.steps},
            {"parameters", outcome.parameters},
            {"final_loss", s.final_loss},
            {"tokens", s.tokens},
            {"seconds", s.seconds},
            {"tokens_per_second", s.tokens_per_second},
            {"world_size", outcome.world_size},
            {"key_width", outcome.config.key_width(0)}};
  if (s.final_val_loss >= 0) {
    j["val_loss"] = s.final_val_loss;
    j["val_perplexity"] = std::exp(s.final_val_loss);
  }
  return j;
}

std::string train_report_text(const TrainJob& job, const TrainOutcome& outcome) {
  const TrainSummary& s = outcome.summary;
  char buf[256];
  std::string text;
  std::snprintf(buf, sizeof buf, "trained  %lld steps, final loss %.4f",
                static_cast<long long>(s.steps), s.final_loss);
  text += buf;
  if (s.final_val_loss >= 0) {
    std::snprintf(buf, sizeof buf, ", validation loss %.4f (perplexity %.2f)", s.final_val_loss,
                  std::exp(s.final_val_loss));
    text += buf;
  }
  std::snprintf(buf, sizeof buf, "\nspeed    %.0f tokens/s (%.1f s)\nsaved    ",
                s.tokens_per_second, s.seconds);
  text += buf;
  text += job.out + "\n";
  return text;
}

}  // namespace thinkeys
