// thinkeys train: a model from scratch (GPT-2 or Llama style, MHA/GQA/MQA,
// optionally thin keys) on a text file or a directory of shards.
#include <cmath>
#include <cstdio>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "tokenizer/tokenizer.h"
#include "train/data_parallel.h"
#include "train/model_builder.h"
#include "train/model_output.h"
#include "train/rank_launcher.h"
#include "train/trainable.h"
#include "train/trainer.h"
#include "train/training_data.h"
#include "train/window_dataset.h"
#include "util/error.h"
#include "util/text_file.h"

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace thinkeys::cli {
namespace {

struct TrainOpts {
  std::string config_file, data, valid, tokenizer, out, cache_dir;
  ArchConfig arch;
  int qk_dim = 0;  // per-head alternative to d_select
  TrainConfig train;
  int64_t tokens = 0;  // alternative to steps
  int eval_batches = 8;
  int nproc = 1;
  bool resume = false, json = false;
};

// Values from --config for every option not given on the command line, so
// flags override the file. Keys are the long option names without dashes,
// with '-' or '_'.
void apply_config_file(CLI::App* sub, const std::string& path) {
  json j;
  try {
    j = json::parse(read_file_bytes(path));
  } catch (const json::exception& e) {
    throw Error("config file " + path + ": " + e.what());
  }
  if (!j.is_object()) throw Error("config file " + path + " must hold a JSON object");
  for (auto& [key, value] : j.items()) {
    std::string name = key;
    std::replace(name.begin(), name.end(), '_', '-');
    CLI::Option* opt = nullptr;
    try {
      opt = sub->get_option("--" + name);
    } catch (const CLI::OptionNotFound&) {
      throw Error("config file " + path + ": unknown key '" + key + "'");
    }
    if (opt->count() > 0) continue;  // the command line wins
    std::string text = value.is_string() ? value.get<std::string>() : value.dump();
    if (value.is_boolean()) {
      if (!value.get<bool>()) continue;
      text = "true";
    }
    try {
      opt->add_result(text);
      opt->run_callback();
    } catch (const CLI::Error& e) {
      throw Error("config file " + path + ": bad value for '" + key + "': " + e.what());
    }
  }
}

}  // namespace

Command add_train(CLI::App& app) {
  auto o = std::make_shared<TrainOpts>();
  auto* sub = app.add_subcommand("train", "Train a model from scratch (thin keys optional)");
  ArchConfig& a = o->arch;
  TrainConfig& t = o->train;
  a.arch = "llama";
  t.log_every = 10;
  sub->add_option(
      "--config", o->config_file,
      "JSON file with any of these options (keys like \"d_select\"); flags override it");
  sub->add_option("--arch", a.arch,
                  "gpt2 (LayerNorm, GELU, learned positions) or llama (RMSNorm, "
                  "SwiGLU, RoPE)")
      ->capture_default_str();
  sub->add_option("--dim", a.dim, "Model width")->capture_default_str();
  sub->add_option("--layers", a.n_layers, "Number of layers")->capture_default_str();
  sub->add_option("--heads", a.n_heads, "Query heads")->capture_default_str();
  sub->add_option("--kv-heads", a.n_kv_heads, "Key/value heads (GQA; 1 = MQA; default: --heads)");
  sub->add_option("--head-dim", a.head_dim, "Head dimension (llama only; default: dim / heads)");
  sub->add_option("--d-select", a.d_select,
                  "Thin keys: query/key width summed over all query heads (the paper's d_select); "
                  "each head gets d_select / heads dims. Default: ordinary attention");
  sub->add_option("--qk-dim", o->qk_dim, "Thin keys, per head: same as --d-select qk_dim*heads");
  sub->add_option("--query-pre-attn-scalar", a.query_pre_attn_scalar,
                  "Scale scores by this^(-1/2) instead of head_dim^(-1/2) (e.g. the thin key width "
                  "per head, as in the paper)");
  sub->add_option("--thin-rope-table", a.thin_rope_table,
                  "Thin keys: RoPE frequencies for the r dims, key_width (a table over r, all "
                  "periods) or head_dim (the r/2 fastest planes of the head_dim table, as models "
                  "trained before this option)")
      ->check(CLI::IsMember({"key_width", "head_dim"}))
      ->capture_default_str();
  sub->add_option("--mla-latent", a.mla_latent,
                  "MLA (DeepSeek-V2): cache a latent of this width per token and layer plus one "
                  "shared RoPE key; per-head keys/values are up-projections of it");
  sub->add_option("--mla-rope-dim", a.mla_rope_dim,
                  "MLA: width of the decoupled RoPE key (default head_dim / 2)");
  sub->add_option("--lrkv-rank", a.lrkv_rank,
                  "LRKV: one shared key/value head plus rank-r residuals per head (RoPE on the "
                  "shared key only)");
  sub->add_option("--hidden", a.hidden_dim,
                  "MLP width (default 4*dim for gpt2, ~8/3*dim for llama)");
  sub->add_option("--ctx", a.ctx, "Context length: training sequence length and max positions")
      ->capture_default_str();
  sub->add_option("--rope-theta", a.rope_theta, "RoPE base")->capture_default_str();
  sub->add_flag(
      "--untied", [&a](int64_t) { a.tied_embeddings = false; },
      "Separate output head (default: tied to the embeddings)");
  sub->add_option("--batch", t.batch_size, "Sequences per micro-batch per rank")
      ->capture_default_str();
  sub->add_option("--grad-accum", t.grad_accum, "Micro-batches per optimizer step")
      ->capture_default_str();
  sub->add_option("--steps", t.steps, "Optimizer steps")->capture_default_str();
  sub->add_option("--tokens", o->tokens, "Train on about this many tokens (sets --steps)");
  sub->add_option("--lr", t.lr, "Peak learning rate")->capture_default_str();
  sub->add_option("--warmup", t.warmup_steps, "Linear warmup steps")->capture_default_str();
  sub->add_option("--min-lr-ratio", t.min_lr_ratio, "Cosine floor as a fraction of --lr")
      ->capture_default_str();
  sub->add_option("--weight-decay", t.weight_decay, "AdamW weight decay (matrices only)")
      ->capture_default_str();
  sub->add_option("--beta2", t.beta2, "AdamW beta2")->capture_default_str();
  sub->add_option("--clip", t.grad_clip, "Gradient clipping norm (0: off)")->capture_default_str();
  sub->add_option("--seed", t.seed, "Seed for initialisation and data order")
      ->capture_default_str();
  sub->add_option("--data", o->data,
                  "Text file, or directory of .txt shards (valid*.txt used for "
                  "validation)");
  sub->add_option("--valid", o->valid, "Validation text file (default: from --data)");
  sub->add_option("--tokenizer", o->tokenizer,
                  "Tokenizer file or directory (e.g. a GPT-2 or Llama tokenizer, or one made by "
                  "'thinkeys tokenizer train')");
  sub->add_option("--cache-dir", o->cache_dir,
                  "Where tokenized data is cached (default "
                  "$THINKEYS_CACHE_DIR or ~/.cache/thinkeys)");
  sub->add_option("--eval-every", t.eval_every, "Validate every N steps (0: only at the end)")
      ->capture_default_str();
  sub->add_option("--eval-batches", o->eval_batches, "Validation batches per evaluation")
      ->capture_default_str();
  sub->add_option("--checkpoint-every", t.checkpoint_every,
                  "Checkpoint every N steps (0: only at the end)")
      ->capture_default_str();
  sub->add_option("--log-every", t.log_every, "Log a JSONL line every N steps")
      ->capture_default_str();
  sub->add_flag("--resume", o->resume, "Continue from OUT/checkpoint if it exists");
  sub->add_option("--nproc", o->nproc,
                  "Data-parallel ranks on this machine (Gloo on loopback); "
                  "ranks can also be started with RANK/WORLD_SIZE/"
                  "MASTER_ADDR/MASTER_PORT")
      ->capture_default_str();
  sub->add_option(
      "-o,--out", o->out,
      "Output directory: the trained model (config.json, model.safetensors, tokenizer), "
      "train_log.jsonl and checkpoint/");
  sub->add_flag("--json", o->json, "Print a JSON summary (no progress line)");

  return {
      sub, [o, sub] {
        if (!o->config_file.empty()) apply_config_file(sub, o->config_file);
        if (o->data.empty()) throw Error("train: --data is required");
        if (o->tokenizer.empty()) throw Error("train: --tokenizer is required");
        if (o->out.empty()) throw Error("train: -o/--out is required");
        if (launch_ranks_if_asked(o->nproc)) {
          if (!o->json)
            std::printf("trained with %d ranks; model in %s\n", o->nproc, o->out.c_str());
          return;
        }
        DataParallelOptions dpo = data_parallel_options_from_env();
        const bool rank0 = dpo.rank == 0;
        ArchConfig arch = o->arch;
        if (o->qk_dim > 0) {
          if (arch.d_select > 0) throw Error("give --d-select or --qk-dim, not both");
          arch.d_select = o->qk_dim * arch.n_heads;
        }
        if (!fs::exists(o->data)) throw Error("training data " + o->data + " not found");

        {
          // Architecture errors first: loading a tokenizer can take seconds.
          ArchConfig check = arch;
          check.vocab_size = 1;
          make_model_config(check);
          o->train.validate();
        }
        auto tok = load_tokenizer(o->tokenizer);
        arch.vocab_size = tok->vocab_size();
        arch.bos_id = tok->bos_id();
        arch.eos_id = tok->eos_id();
        ModelConfig mc = make_model_config(arch);  // bad architectures fail before tokenizing
        TrainConfig tc = o->train;
        tc.validate();
        const int world = dpo.world_size;
        const int64_t tokens_per_step =
            static_cast<int64_t>(tc.batch_size) * tc.grad_accum * world * arch.ctx;
        if (o->tokens > 0) tc.steps = std::max<int64_t>(1, o->tokens / tokens_per_step);
        tc.warmup_steps = std::min(tc.warmup_steps, tc.steps);
        tc.out_dir = o->out;
        tc.checkpoint_dir = fs::path(o->out) / "checkpoint";
        tc.show_progress = !o->json && rank0;
        tc.print_log = false;

        // Rank 0 tokenizes (and fills the cache) while the others wait, then
        // they read the cache instead of repeating the work.
        dpo.timeout_seconds = 1800;
        std::unique_ptr<DataParallel> dp;
        if (world > 1) dp = std::make_unique<DataParallel>(dpo);
        if (dp && !rank0) dp->barrier();
        TokenizeOptions topts;
        topts.cache_dir = o->cache_dir;
        topts.show_progress = !o->json && rank0;
        TextData data = load_text_data(o->data, o->valid, *tok,
                                       tokenizer_fingerprint(*tok, o->tokenizer), topts);
        if (dp && rank0) dp->barrier();
        WindowDataset train(std::move(data.train), arch.ctx, tc.seed);
        std::vector<Batch> valid;
        if (static_cast<int>(data.valid.size()) > arch.ctx) {
          WindowDataset v(std::move(data.valid), arch.ctx, tc.seed, /*shuffle=*/false);
          for (int64_t w = 0; w < v.windows() && static_cast<int>(valid.size()) < o->eval_batches;
               w += tc.batch_size)
            valid.push_back(v.windows_in_order(w, tc.batch_size));
        }

        Model model = init_model(mc, tc.seed);
        const int64_t params = model.parameter_count();
        Trainer trainer(model, tc, train.source());
        trainer.set_validation(valid);
        if (dp) trainer.set_data_parallel(dp.get());
        const fs::path ckpt = fs::path(o->out) / "checkpoint";
        if (o->resume && fs::exists(ckpt / "trainer_state.json")) trainer.load_checkpoint(ckpt);
        if (rank0 && !o->json) {
          std::printf(
              "model    %s, %d layers, width %d, %d heads (%d KV), head dim %d, key "
              "width %d per head, %s attention, %.2fM parameters, KV %lld B/token (f16)\n",
              mc.model_type.c_str(), mc.n_layers, mc.dim, mc.n_heads, mc.n_kv_heads, mc.head_dim,
              mc.key_width(0), to_string(mc.attention.kind), static_cast<double>(params) / 1e6,
              static_cast<long long>(mc.kv_bytes_per_token(2, 2)));
          std::printf(
              "data     %lld training tokens (%lld windows of %d), %zu validation "
              "batches%s\n",
              static_cast<long long>(train.tokens()), static_cast<long long>(train.windows()),
              arch.ctx, valid.size(), data.valid_held_out ? " (held out from training data)" : "");
          std::printf("schedule %lld steps x %lld tokens (batch %d x accum %d x ranks %d)%s\n",
                      static_cast<long long>(tc.steps), static_cast<long long>(tokens_per_step),
                      tc.batch_size, tc.grad_accum, world,
                      trainer.steps_done() > 0
                          ? (", resuming at step " + std::to_string(trainer.steps_done())).c_str()
                          : "");
          std::fflush(stdout);
        }
        TrainSummary s = trainer.run();
        if (!rank0) return;
        save_trained_model(inference_model(model), o->out, o->tokenizer);
        if (o->json) {
          json j = {{"out", o->out},
                    {"steps", s.steps},
                    {"parameters", params},
                    {"final_loss", s.final_loss},
                    {"tokens", s.tokens},
                    {"seconds", s.seconds},
                    {"tokens_per_second", s.tokens_per_second},
                    {"world_size", world},
                    {"key_width", mc.key_width(0)}};
          if (s.final_val_loss >= 0) {
            j["val_loss"] = s.final_val_loss;
            j["val_perplexity"] = std::exp(s.final_val_loss);
          }
          std::printf("%s\n", j.dump(2).c_str());
          return;
        }
        std::printf("trained  %lld steps, final loss %.4f", static_cast<long long>(s.steps),
                    s.final_loss);
        if (s.final_val_loss >= 0)
          std::printf(", validation loss %.4f (perplexity %.2f)", s.final_val_loss,
                      std::exp(s.final_val_loss));
        std::printf("\nspeed    %.0f tokens/s (%.1f s)\nsaved    %s\n", s.tokens_per_second,
                    s.seconds, o->out.c_str());
      }};
}

}  // namespace thinkeys::cli
