#include "train/trainer.h"

#include <ATen/CPUGeneratorImpl.h>
#include <malloc.h>
#include <sys/resource.h>
#include <torch/optim/adamw.h>
#include <torch/serialize.h>

#include <chrono>
#include <cmath>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>

#include "checkpoint/hf_checkpoint.h"
#include "train/data_parallel.h"
#include "train/training_forward.h"
#include "util/atomic_output.h"
#include "util/enum_names.h"
#include "util/error.h"
#include "util/progress.h"
#include "util/text_file.h"

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace thinkeys {

struct Trainer::Optim {
  // Matrices get weight decay; vectors (norms, biases) do not.
  std::vector<at::Tensor> decay, no_decay, all;
  std::unique_ptr<torch::optim::AdamW> adamw;
};

namespace {

// Training allocates and frees the same large tensors (logits, activations)
// every step. glibc serves big blocks with fresh mmaps and unmaps them on free,
// so each step paid page faults on every byte (measured: most of a small
// model's step time). Serving everything from the heap and never trimming it
// keeps those pages mapped across steps.
void keep_freed_memory() {
  static const bool done = [] {
    mallopt(M_MMAP_MAX, 0);
    mallopt(M_TRIM_THRESHOLD, 1 << 30);
    return true;
  }();
  (void)done;
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

json config_json(const TrainConfig& c) {
  return {{"steps", c.steps},
          {"batch_size", c.batch_size},
          {"grad_accum", c.grad_accum},
          {"lr", c.lr},
          {"warmup_steps", c.warmup_steps},
          {"min_lr_ratio", c.min_lr_ratio},
          {"weight_decay", c.weight_decay},
          {"beta1", c.beta1},
          {"beta2", c.beta2},
          {"grad_clip", c.grad_clip},
          {"seed", c.seed},
          {"scope", c.scope == TrainScope::QK ? "qk" : "all"},
          {"loss", c.loss == LossKind::KD ? "kd" : "lm"}};
}

// User + system CPU seconds of this process: on a shared machine tokens per
// CPU-second shows the trainer's own efficiency, which wall time cannot.
double process_cpu_seconds() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  auto s = [](const timeval& t) { return static_cast<double>(t.tv_sec) + 1e-6 * t.tv_usec; };
  return s(u.ru_utime) + s(u.ru_stime);
}

}  // namespace

LossKind parse_loss_kind(const std::string& s) {
  static constexpr EnumName<LossKind> kNames[] = {{LossKind::LM, "lm"}, {LossKind::KD, "kd"}};
  return parse_enum<LossKind>(kNames, s, "loss");
}

void TrainConfig::validate() const {
  auto require = [](bool ok, const std::string& what) {
    if (!ok) throw Error("invalid training config: " + what);
  };
  require(steps > 0, "steps must be positive");
  require(batch_size > 0, "batch size must be positive");
  require(grad_accum > 0, "gradient accumulation must be positive");
  require(lr > 0 && std::isfinite(lr), "learning rate must be positive");
  require(warmup_steps >= 0, "warmup steps must be non-negative");
  require(min_lr_ratio >= 0 && min_lr_ratio <= 1, "min_lr_ratio must be in [0, 1]");
  require(weight_decay >= 0, "weight decay must be non-negative");
  require(beta1 >= 0 && beta1 < 1 && beta2 >= 0 && beta2 < 1, "Adam betas must be in [0, 1)");
  require(adam_eps > 0, "Adam epsilon must be positive");
  require(grad_clip >= 0, "gradient clip must be non-negative");
  require(eval_every >= 0 && checkpoint_every >= 0 && log_every >= 0,
          "eval/checkpoint/log intervals must be non-negative");
}

double learning_rate(const TrainConfig& c, int64_t step) {
  if (step < c.warmup_steps) return c.lr * static_cast<double>(step + 1) / c.warmup_steps;
  const double floor = c.lr * c.min_lr_ratio;
  const int64_t span = c.steps - 1 - c.warmup_steps;
  if (span <= 0) return c.lr;
  const double p = std::min(1.0, static_cast<double>(step - c.warmup_steps) / span);
  return floor + (c.lr - floor) * 0.5 * (1.0 + std::cos(M_PI * p));
}

Trainer::Trainer(Model& model, const TrainConfig& config, SampleSource train)
    : model_(model), config_(config), train_(std::move(train)), optim_(new Optim) {
  config_.validate();
  keep_freed_memory();
  params_ = prepare_for_training(model_, config_.scope);
  for (const auto& p : params_) {
    if (!p.trainable) continue;
    (p.tensor.dim() >= 2 ? optim_->decay : optim_->no_decay).push_back(p.tensor);
    optim_->all.push_back(p.tensor);
  }
  if (optim_->all.empty()) throw Error("nothing to train: the model has no tensors in this scope");
  auto opts = [&](double wd) {
    return std::make_unique<torch::optim::AdamWOptions>(torch::optim::AdamWOptions(config_.lr)
                                                            .betas({config_.beta1, config_.beta2})
                                                            .eps(config_.adam_eps)
                                                            .weight_decay(wd));
  };
  std::vector<torch::optim::OptimizerParamGroup> groups;
  if (!optim_->decay.empty()) groups.emplace_back(optim_->decay, opts(config_.weight_decay));
  if (!optim_->no_decay.empty()) groups.emplace_back(optim_->no_decay, opts(0.0));
  optim_->adamw =
      std::make_unique<torch::optim::AdamW>(groups, torch::optim::AdamWOptions(config_.lr));
}

Trainer::~Trainer() = default;

void Trainer::set_validation(std::vector<Batch> batches) { validation_ = std::move(batches); }

void Trainer::set_teacher(const Model* teacher) { teacher_ = teacher; }

void Trainer::set_step_callback(std::function<void(const StepStats&)> cb) {
  callback_ = std::move(cb);
}

void Trainer::set_data_parallel(DataParallel* dp) {
  dp_ = dp;
  if (dp_ == nullptr) return;
  at::NoGradGuard no_grad;
  std::vector<at::Tensor> all;
  for (const auto& p : params_) all.push_back(p.tensor);
  dp_->broadcast(all, 0);
}

at::Tensor Trainer::micro_batch_loss(const Batch& batch) const {
  at::Tensor logits = training_forward(model_, batch.inputs);
  if (config_.loss == LossKind::LM) return lm_loss(logits, batch.targets);
  if (teacher_ == nullptr) throw Error("distillation loss needs a teacher model");
  at::Tensor teacher_logits;
  {
    at::NoGradGuard no_grad;
    teacher_logits = training_forward(*teacher_, batch.inputs);
  }
  return kd_loss(logits, teacher_logits, batch.targets);
}

StepStats Trainer::step() {
  auto t0 = std::chrono::steady_clock::now();
  const int world = dp_ ? dp_->world_size() : 1, rank = dp_ ? dp_->rank() : 0;
  const int B = config_.batch_size;
  for (auto& p : optim_->all) p.mutable_grad() = at::Tensor();

  double loss_sum = 0;
  int64_t step_tokens = 0;
  for (int micro = 0; micro < config_.grad_accum; ++micro) {
    // Micro-batch `micro` of this step is world*B consecutive samples; rank r
    // takes the r-th slice, so one process with batch world*B sees the same data.
    const int64_t first = samples_ + (static_cast<int64_t>(micro) * world + rank) * B;
    Batch batch = train_(first, B);
    at::Tensor loss = micro_batch_loss(batch);
    (loss / config_.grad_accum).backward();
    loss_sum += loss.item<double>();
    step_tokens += batch.inputs.numel() * world;
  }
  double mean_loss = loss_sum / config_.grad_accum;

  at::NoGradGuard no_grad;
  for (auto& p : optim_->all)
    if (!p.grad().defined()) p.mutable_grad() = at::zeros_like(p);
  if (dp_) {
    std::vector<at::Tensor> grads;
    for (auto& p : optim_->all) grads.push_back(p.grad());
    at::Tensor l = at::full({1}, mean_loss, at::kDouble);
    grads.push_back(l);
    dp_->average(grads);
    mean_loss = l.item<double>();
  }
  // Global L2 norm before clipping; clipping scales all gradients together,
  // the same rule as torch.nn.utils.clip_grad_norm_.
  double sq = 0;
  for (auto& p : optim_->all) sq += p.grad().pow(2).sum().item<double>();
  const double norm = std::sqrt(sq);
  if (config_.grad_clip > 0 && norm > config_.grad_clip) {
    const double scale = config_.grad_clip / (norm + 1e-6);
    for (auto& p : optim_->all) p.grad().mul_(scale);
  }
  const double lr = learning_rate(config_, step_);
  for (auto& g : optim_->adamw->param_groups()) g.options().set_lr(lr);
  optim_->adamw->step();

  ++step_;
  samples_ += static_cast<int64_t>(config_.grad_accum) * world * B;
  tokens_ += step_tokens;
  StepStats s{step_, mean_loss, norm, lr, tokens_, seconds_since(t0)};
  if (callback_) callback_(s);
  return s;
}

double Trainer::validate() const {
  if (validation_.empty()) throw Error("no validation data");
  at::NoGradGuard no_grad;
  double nll = 0;
  int64_t n = 0;
  for (const auto& b : validation_) {
    at::Tensor logits = training_forward(model_, b.inputs);
    int64_t scored = b.targets.ne(kIgnoreIndex).sum().item<int64_t>();
    nll += lm_loss(logits, b.targets).item<double>() * static_cast<double>(scored);
    n += scored;
  }
  return n > 0 ? nll / static_cast<double>(n) : 0.0;
}

void Trainer::log_line(const std::string& line) const {
  if (dp_ && dp_->rank() != 0) return;
  if (config_.print_log) std::printf("%s\n", line.c_str()), std::fflush(stdout);
  if (config_.out_dir.empty()) return;
  std::ofstream out(config_.out_dir / "train_log.jsonl", std::ios::app);
  out << line << '\n';
  if (!out) throw Error("cannot append to " + (config_.out_dir / "train_log.jsonl").string());
}

TrainSummary Trainer::run() {
  if (!config_.out_dir.empty()) fs::create_directories(config_.out_dir);
  const bool rank0 = !dp_ || dp_->rank() == 0;
  const int64_t start_step = step_, start_tokens = tokens_;
  std::optional<Progress> progress;
  auto t0 = std::chrono::steady_clock::now();
  const double cpu0 = process_cpu_seconds();
  TrainSummary sum;
  int64_t prev_tokens = tokens_;
  while (step_ < config_.steps) {
    StepStats s = step();
    // Tokens per step are known only after the first batch (sequence length).
    const int64_t step_tokens = s.tokens - prev_tokens;
    prev_tokens = s.tokens;
    if (!progress && config_.show_progress && rank0)
      progress.emplace("train", (config_.steps - start_step) * step_tokens, "tok");
    if (progress) progress->advance(step_tokens);
    sum.final_loss = s.loss;
    const bool last = step_ == config_.steps;
    if (config_.log_every > 0 && (step_ % config_.log_every == 0 || last || step_ == 1)) {
      double el = seconds_since(t0);
      json j = {{"step", s.step},
                {"loss", s.loss},
                {"lr", s.lr},
                {"grad_norm", s.grad_norm},
                {"tokens", s.tokens},
                {"tokens_per_s", el > 0 ? static_cast<double>(s.tokens - start_tokens) / el : 0.0},
                {"elapsed_s", el},
                {"cpu_s", process_cpu_seconds() - cpu0}};
      log_line(j.dump());
    }
    if (!validation_.empty() &&
        (last || (config_.eval_every > 0 && step_ % config_.eval_every == 0))) {
      double v = validate();
      sum.final_val_loss = v;
      log_line(json{{"step", step_}, {"val_loss", v}, {"val_ppl", std::exp(v)}}.dump());
    }
    if (!config_.checkpoint_dir.empty() &&
        (last || (config_.checkpoint_every > 0 && step_ % config_.checkpoint_every == 0)))
      save_checkpoint(config_.checkpoint_dir);
  }
  if (progress) progress->finish();
  sum.steps = step_;
  sum.seconds = seconds_since(t0);
  sum.tokens = tokens_ - start_tokens;
  sum.tokens_per_second = sum.seconds > 0 ? static_cast<double>(sum.tokens) / sum.seconds : 0;
  return sum;
}

void Trainer::save_checkpoint(const fs::path& dir) const {
  if (dp_ && dp_->rank() != 0) {
    dp_->barrier();
    return;
  }
  json state = {{"step", step_},
                {"samples", samples_},
                {"tokens", tokens_},
                {"world_size", dp_ ? dp_->world_size() : 1},
                {"samples_per_step", static_cast<int64_t>(config_.grad_accum) * config_.batch_size *
                                         (dp_ ? dp_->world_size() : 1)},
                {"config", config_json(config_)}};
  write_directory_atomically(dir, [&](const fs::path& tmp) {
    write_hf_checkpoint(inference_model(model_), tmp, DType::F32);
    torch::save(*optim_->adamw, (tmp / "optimizer.pt").string());
    torch::save(at::detail::getDefaultCPUGenerator().get_state(), (tmp / "rng.pt").string());
    write_text_atomically(tmp / "trainer_state.json", state.dump(2) + "\n");
  });
  if (dp_) dp_->barrier();
}

void Trainer::load_checkpoint(const fs::path& dir) {
  for (const char* f : {"config.json", "optimizer.pt", "rng.pt", "trainer_state.json"})
    if (!fs::exists(dir / f))
      throw Error("cannot resume: " + (dir / f).string() +
                  " is missing (not a thinkeys checkpoint)");
  json state;
  try {
    state = json::parse(read_file_bytes(dir / "trainer_state.json"));
  } catch (const json::exception& e) {
    throw Error("cannot resume: " + (dir / "trainer_state.json").string() + ": " + e.what());
  }
  const int64_t per_step =
      static_cast<int64_t>(config_.grad_accum) * config_.batch_size * (dp_ ? dp_->world_size() : 1);
  if (state.value("samples_per_step", int64_t{0}) != per_step)
    throw Error("cannot resume: the checkpoint was trained with " +
                std::to_string(state.value("samples_per_step", int64_t{0})) +
                " sequences per step, this run uses " + std::to_string(per_step) +
                " (batch x accumulation x ranks must match)");

  Model saved = load_hf_checkpoint(dir);
  auto saved_params = prepare_for_training(saved, TrainScope::All);
  std::map<std::string, at::Tensor> by_name;
  for (auto& p : saved_params) by_name[p.name] = p.tensor;
  {
    at::NoGradGuard no_grad;
    for (auto& p : params_) {
      auto it = by_name.find(p.name);
      if (it == by_name.end() || !it->second.sizes().equals(p.tensor.sizes()))
        throw Error("cannot resume: checkpoint " + dir.string() + " does not match this model (" +
                    p.name + ")");
      p.tensor.copy_(it->second);
    }
  }
  torch::load(*optim_->adamw, (dir / "optimizer.pt").string());
  at::Tensor rng;
  torch::load(rng, (dir / "rng.pt").string());
  at::Generator gen = at::detail::getDefaultCPUGenerator();
  gen.set_state(rng);
  step_ = state.at("step").get<int64_t>();
  samples_ = state.at("samples").get<int64_t>();
  tokens_ = state.at("tokens").get<int64_t>();
}

}  // namespace thinkeys
