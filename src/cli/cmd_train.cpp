// thinkeys train: a model from scratch (GPT-2 or Llama style, MHA/GQA/MQA,
// optionally thin keys) on a text file or a directory of shards.
#include <algorithm>
#include <cstdio>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "train/rank_launcher.h"
#include "train/train_job.h"
#include "util/error.h"
#include "util/text_file.h"

using json = nlohmann::json;

namespace thinkeys::cli {
namespace {

struct TrainOpts {
  std::string config_file;
  TrainJob job;
  int nproc = 1;
  bool json = false;
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
  TrainJob& job = o->job;
  ArchConfig& a = job.arch;
  TrainConfig& t = job.train;
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
  sub->add_option("--qk-dim", job.qk_dim, "Thin keys, per head: same as --d-select qk_dim*heads");
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
  sub->add_option("--tokens", job.tokens, "Train on about this many tokens (sets --steps)");
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
  sub->add_option("--data", job.data,
                  "Text file, or directory of .txt shards (valid*.txt used for "
                  "validation, test*.txt never read)");
  sub->add_option("--valid", job.valid, "Validation text file (default: from --data)");
  sub->add_option("--tokenizer", job.tokenizer,
                  "Tokenizer file or directory (e.g. a GPT-2 or Llama tokenizer, or one made by "
                  "'thinkeys tokenizer train')");
  sub->add_option("--cache-dir", job.cache_dir,
                  "Where tokenized data is cached (default "
                  "$THINKEYS_CACHE_DIR or ~/.cache/thinkeys)");
  sub->add_option("--eval-every", t.eval_every, "Validate every N steps (0: only at the end)")
      ->capture_default_str();
  sub->add_option("--eval-batches", job.eval_batches, "Validation batches per evaluation")
      ->capture_default_str();
  sub->add_option("--checkpoint-every", t.checkpoint_every,
                  "Checkpoint every N steps (0: only at the end)")
      ->capture_default_str();
  sub->add_option("--log-every", t.log_every, "Log a JSONL line every N steps")
      ->capture_default_str();
  sub->add_flag("--resume", job.resume, "Continue from OUT/checkpoint if it exists");
  sub->add_option("--nproc", o->nproc,
                  "Data-parallel ranks on this machine (Gloo on loopback); "
                  "ranks can also be started with RANK/WORLD_SIZE/"
                  "MASTER_ADDR/MASTER_PORT")
      ->capture_default_str();
  sub->add_option(
      "-o,--out", job.out,
      "Output directory: the trained model (config.json, model.safetensors, tokenizer), "
      "train_log.jsonl and checkpoint/");
  sub->add_flag("--json", o->json, "Print a JSON summary (no progress line)");

  return {sub, [o, sub] {
            if (!o->config_file.empty()) apply_config_file(sub, o->config_file);
            TrainJob& job = o->job;
            if (job.data.empty()) throw Error("train: --data is required");
            if (job.tokenizer.empty()) throw Error("train: --tokenizer is required");
            if (job.out.empty()) throw Error("train: -o/--out is required");
            if (launch_ranks_if_asked(o->nproc)) {
              if (!o->json)
                std::printf("trained with %d ranks; model in %s\n", o->nproc, job.out.c_str());
              return;
            }
            job.quiet = o->json;
            const TrainOutcome outcome = run_training(job);
            if (!outcome.rank0) return;
            if (o->json)
              std::printf("%s\n", train_report_json(job, outcome).dump(2).c_str());
            else
              std::printf("%s", train_report_text(job, outcome).c_str());
          }};
}

}  // namespace thinkeys::cli
