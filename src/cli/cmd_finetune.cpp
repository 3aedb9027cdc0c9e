// thinkeys finetune: recover quality after compression by training only the
// query and key maps (docs/design.md section 5), with the LM loss or by distilling
// from the original model; --control fine-tunes the original identically so
// the compressed-vs-control gap can be reported.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <nlohmann/json.hpp>

#include "checkpoint/hf_checkpoint.h"
#include "checkpoint/model_loader.h"
#include "cli/commands.h"
#include "cli/common.h"
#include "cli/shared_options.h"
#include "train/data_parallel.h"
#include "train/model_output.h"
#include "train/rank_launcher.h"
#include "train/train_job.h"
#include "train/trainable.h"
#include "train/trainer.h"
#include "train/training_data.h"
#include "train/window_dataset.h"
#include "util/error.h"

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace thinkeys::cli {
namespace {

struct FinetuneOpts {
  std::string model, teacher, data, valid, tokenizer, out, control_out, cache_dir;
  std::string scope = "qk", loss = "lm";
  std::string dtype = "stored";  // saved weight dtype
  double epochs = 1;
  int64_t max_tokens = 0;
  int ctx = 512, eval_batches = 8, nproc = 1;
  bool control = false, json = false, resume = false;
  TrainConfig train;
};

struct RunResult {
  double val_before = -1, val_after = -1;
  int64_t resumed_at = 0;  // step of the checkpoint this run continued from; 0: a fresh run
  TrainSummary summary;
};

// Fine-tunes `model` in place on `data`; rank 0 (or the only process) saves
// it to `out`.
RunResult finetune_one(Model& model, const Model* teacher, const FinetuneOpts& o,
                       const WindowDataset& data, const std::vector<Batch>& valid,
                       const std::string& out, const std::string& tokenizer_source, bool quiet,
                       DataParallel* dp) {
  TrainConfig tc = o.train;
  tc.out_dir = out;
  tc.show_progress = !quiet;
  // Checkpoints (and so --resume) only when asked: a checkpoint holds the
  // optimizer state, several times the size of the QK maps being trained.
  if (tc.checkpoint_every > 0 || o.resume) tc.checkpoint_dir = fs::path(out) / "checkpoint";
  Trainer trainer(model, tc, data.source());
  trainer.set_validation(valid);
  if (teacher != nullptr) trainer.set_teacher(teacher);
  if (dp != nullptr) trainer.set_data_parallel(dp);
  RunResult r;
  // "Before" is the model as given, also when the run resumes.
  if (!valid.empty()) r.val_before = trainer.validate();
  if (auto ckpt = resume_checkpoint(out, o.resume)) {
    trainer.load_checkpoint(*ckpt);
    r.resumed_at = trainer.steps_done();
  }
  r.summary = trainer.run();
  r.val_after = r.summary.final_val_loss;
  if (dp == nullptr || dp->rank() == 0)
    save_trained_model(inference_model(model), out, tokenizer_source,
                       dtype_for_saving(o.dtype, model.config));
  return r;
}

json result_json(const RunResult& r) {
  json j = {{"steps", r.summary.steps},
            {"resumed_at_step", r.resumed_at},
            {"final_train_loss", r.summary.final_loss},
            {"seconds", r.summary.seconds},
            {"tokens_per_second", r.summary.tokens_per_second}};
  if (r.val_before >= 0) {
    j["val_loss_before"] = r.val_before;
    j["val_ppl_before"] = std::exp(r.val_before);
    j["val_loss_after"] = r.val_after;
    j["val_ppl_after"] = std::exp(r.val_after);
  }
  return j;
}

void print_result(const char* label, const RunResult& r) {
  if (r.resumed_at > 0)
    std::printf("%-10s resumed from the checkpoint at step %lld\n", label,
                static_cast<long long>(r.resumed_at));
  if (r.val_before >= 0)
    std::printf("%-10s validation perplexity %.3f -> %.3f (loss %.4f -> %.4f), %lld steps\n", label,
                std::exp(r.val_before), std::exp(r.val_after), r.val_before, r.val_after,
                static_cast<long long>(r.summary.steps));
  else
    std::printf("%-10s final training loss %.4f, %lld steps\n", label, r.summary.final_loss,
                static_cast<long long>(r.summary.steps));
}

}  // namespace

Command add_finetune(CLI::App& app) {
  auto o = std::make_shared<FinetuneOpts>();
  TrainConfig& t = o->train;
  t.lr = 5e-5;
  t.weight_decay = 0.01;
  t.beta2 = 0.999;
  t.min_lr_ratio = 0.1;
  t.log_every = 10;
  auto* sub = app.add_subcommand(
      "finetune", "Fine-tune a (compressed) model's query/key maps, everything else frozen");
  sub->add_option("model", o->model, "Model to fine-tune (e.g. the output of thinkeys compress)")
      ->required();
  sub->add_option("--train", o->scope,
                  "qk: only W_Q, W_K (+biases) and the thin-key maps k_down/q_down/k_up; all: "
                  "every weight")
      ->capture_default_str();
  sub->add_option("--loss", o->loss, "lm (next-token loss) or kd (KL to --teacher)")
      ->capture_default_str();
  sub->add_option("--teacher", o->teacher,
                  "Original uncompressed model: the distillation teacher, and the --control model");
  sub->add_option("--data", o->data, "Text file or directory of .txt shards")->required();
  sub->add_option("--valid", o->valid, "Validation text file (default: from --data)");
  sub->add_option("--epochs", o->epochs, "Passes over the training windows")->capture_default_str();
  sub->add_option("--max-tokens", o->max_tokens, "Use only the first N training tokens");
  sub->add_option("--ctx", o->ctx, "Sequence length (capped at the model's positions)")
      ->capture_default_str();
  sub->add_option("--batch", t.batch_size, "Sequences per micro-batch")->capture_default_str();
  sub->add_option("--grad-accum", t.grad_accum, "Micro-batches per step")->capture_default_str();
  sub->add_option("--lr", t.lr, "Peak learning rate")->capture_default_str();
  sub->add_option("--weight-decay", t.weight_decay, "AdamW weight decay")->capture_default_str();
  sub->add_option("--clip", t.grad_clip, "Gradient clipping norm (0: off)")->capture_default_str();
  sub->add_option("--seed", t.seed, "Data-order seed")->capture_default_str();
  sub->add_option("--eval-every", t.eval_every, "Validate every N steps (0: only at the end)")
      ->capture_default_str();
  sub->add_option("--eval-batches", o->eval_batches, "Validation batches")->capture_default_str();
  sub->add_option("--checkpoint-every", t.checkpoint_every,
                  "Checkpoint to OUT/checkpoint every N steps and at the end (0: none unless "
                  "--resume)")
      ->check(CLI::NonNegativeNumber);
  sub->add_flag("--resume", o->resume,
                "Continue from OUT/checkpoint when it holds a trainer state (same options; the "
                "control from its own OUT-control/checkpoint); otherwise start fresh");
  add_tokenizer_option(sub, o->tokenizer);
  sub->add_option("--dtype", o->dtype,
                  "Saved weight dtype: stored (the input model's, default), f32, f16 or bf16")
      ->check(CLI::IsMember({"stored", "f32", "f16", "bf16"}));
  sub->add_option("--cache-dir", o->cache_dir, "Where tokenized data is cached");
  sub->add_flag("--control", o->control,
                "Also fine-tune --teacher (the uncompressed model) identically and report the gap");
  sub->add_option("--control-out", o->control_out,
                  "Where the fine-tuned control goes (default: OUT-control)");
  sub->add_option("--nproc", o->nproc,
                  "Data-parallel ranks on this machine (Gloo on loopback); --batch is per rank. "
                  "Ranks can also be started with RANK/WORLD_SIZE/MASTER_ADDR/MASTER_PORT")
      ->capture_default_str();
  sub->add_option("-o,--out", o->out, "Output model directory")->required();
  sub->add_flag("--json", o->json, "Print JSON");

  return {
      sub, [o] {
        TrainConfig& tc = o->train;
        tc.scope = parse_train_scope(o->scope);
        tc.loss = parse_loss_kind(o->loss);
        if (!(o->epochs > 0)) throw Error("--epochs must be positive");
        if (tc.loss == LossKind::KD && o->teacher.empty())
          throw Error("--loss kd needs --teacher (the original model)");
        if (o->control && o->teacher.empty())
          throw Error("--control needs --teacher (the uncompressed model to fine-tune)");
        if (!fs::exists(o->data)) throw Error("training data " + o->data + " not found");
        if (fs::weakly_canonical(o->out) == fs::weakly_canonical(o->model))
          throw Error("-o must differ from the model being fine-tuned");
        if (launch_ranks_if_asked(o->nproc)) {
          if (!o->json)
            std::printf("fine-tuned with %d ranks; model in %s\n", o->nproc, o->out.c_str());
          return;
        }
        DataParallelOptions dpo = data_parallel_options_from_env();
        dpo.timeout_seconds = 1800;  // rank 0 may spend minutes tokenizing
        std::unique_ptr<DataParallel> dp;
        if (dpo.world_size > 1) dp = std::make_unique<DataParallel>(dpo);
        const bool rank0 = dpo.rank == 0, quiet = o->json || !rank0;

        Model model = load_model(o->model);
        std::optional<Model> teacher;
        if (!o->teacher.empty()) {
          teacher = load_model(o->teacher);
          if (teacher->config.vocab_size != model.config.vocab_size)
            throw Error("the teacher's vocabulary (" + std::to_string(teacher->config.vocab_size) +
                        ") differs from the model's (" + std::to_string(model.config.vocab_size) +
                        ")");
        }
        const std::string tok_source = o->tokenizer.empty() ? o->model : o->tokenizer;
        auto tok = tokenizer_for(o->model, o->tokenizer, model);
        const int ctx = std::min(o->ctx, model.config.max_positions);

        TokenizeOptions topts;
        topts.cache_dir = o->cache_dir;
        topts.show_progress = !quiet;
        // Rank 0 fills the token cache while the others wait, then they read it.
        if (dp && !rank0) dp->barrier();
        TextData text = load_text_data(
            o->data, o->valid, *tok, tokenizer_fingerprint(*tok, tok_source), topts, o->max_tokens);
        if (dp && rank0) dp->barrier();
        WindowDataset data(std::move(text.train), ctx, tc.seed);
        std::vector<Batch> valid;
        if (static_cast<int>(text.valid.size()) > ctx) {
          WindowDataset v(std::move(text.valid), ctx, tc.seed, /*shuffle=*/false);
          for (int64_t w = 0; w < v.windows() && static_cast<int>(valid.size()) < o->eval_batches;
               w += tc.batch_size)
            valid.push_back(v.windows_in_order(w, tc.batch_size));
        }
        const int64_t per_step =
            static_cast<int64_t>(tc.batch_size) * tc.grad_accum * dpo.world_size;
        tc.steps = std::max<int64_t>(
            1, static_cast<int64_t>(std::ceil(o->epochs * static_cast<double>(data.windows()) /
                                              static_cast<double>(per_step))));
        // The paper's recipe: warmup min(100, steps/10), cosine to 0.1x.
        tc.warmup_steps = std::min<int64_t>(100, tc.steps / 10);
        if (!quiet)
          std::printf(
              "finetune  %s: train %s, loss %s, %lld steps of %lld x %d tokens "
              "(%.2f epochs of %lld windows)\n",
              o->model.c_str(), o->scope.c_str(), o->loss.c_str(), static_cast<long long>(tc.steps),
              static_cast<long long>(per_step), ctx, o->epochs,
              static_cast<long long>(data.windows()));

        RunResult main = finetune_one(model, teacher ? &*teacher : nullptr, *o, data, valid, o->out,
                                      tok_source, quiet, dp.get());
        std::optional<RunResult> control;
        const std::string control_out =
            o->control_out.empty() ? o->out + "-control" : o->control_out;
        if (o->control) {
          // Same data order, steps and scope on the original; with --loss kd
          // its teacher is a frozen copy of itself.
          Model ctrl = load_model(o->teacher);
          control = finetune_one(ctrl, teacher ? &*teacher : nullptr, *o, data, valid, control_out,
                                 o->tokenizer.empty() ? o->teacher : o->tokenizer, quiet, dp.get());
        }
        if (!rank0) return;
        if (o->json) {
          json j = {
              {"model", o->model}, {"out", o->out}, {"train", o->scope},          {"loss", o->loss},
              {"steps", tc.steps}, {"ctx", ctx},    {"result", result_json(main)}};
          if (control) {
            j["control_out"] = control_out;
            j["control"] = result_json(*control);
            if (main.val_after >= 0)
              j["gap_vs_control_pct"] =
                  100.0 * (std::exp(main.val_after) / std::exp(control->val_after) - 1.0);
          }
          std::printf("%s\n", j.dump(2).c_str());
          return;
        }
        print_result("model", main);
        if (control) {
          print_result("control", *control);
          if (main.val_after >= 0)
            std::printf("gap       %+.2f%% perplexity vs the control\n",
                        100.0 * (std::exp(main.val_after) / std::exp(control->val_after) - 1.0));
        }
        std::printf("saved     %s%s\n", o->out.c_str(),
                    control ? (" and " + control_out).c_str() : "");
      }};
}

}  // namespace thinkeys::cli
