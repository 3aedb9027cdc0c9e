#include "experiments/selection_experiment.h"

#include <ATen/CPUGeneratorImpl.h>
#include <torch/optim/adam.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <mutex>
#include <optional>
#include <tuple>

#include "experiments/selection_key_rank.h"
#include "train/batch.h"
#include "train/model_builder.h"
#include "train/trainable.h"
#include "train/training_forward.h"
#include "util/error.h"
#include "util/progress.h"
#include "util/work_pool.h"

namespace thinkeys {
namespace {

bool is_position(const SelectionRun& r) { return r.task == SelectionTask::Position; }

CopyBackSpec copy_back_spec(const SelectionRun& r) {
  CopyBackSpec s;
  s.vocab = r.n;
  return s;
}

RetrievalSpec retrieval_spec(const SelectionRun& r) { return {r.n, r.pairs}; }

int task_vocab(const SelectionRun& r) { return is_position(r) ? r.n : retrieval_spec(r).vocab(); }

ArchConfig arch_for(const SelectionRun& r) {
  ArchConfig a;
  a.arch = "gpt2";
  a.vocab_size = task_vocab(r);
  a.dim = r.dim;
  a.n_layers = r.layers;
  a.n_heads = r.heads;
  a.hidden_dim = r.hidden;
  a.d_select = r.d_select == r.dim ? 0 : r.d_select;
  a.ctx = 512;  // the paper's learned position table; only the first 64 slots are used
  a.tied_embeddings = false;
  return a;
}

// The runtime (and so the training forward) scales scores by 1/sqrt(head_dim)
// for every key width; the paper scales by 1/sqrt(d_qk). The two models are
// the same function with W_Q = c * W_Q(paper), c = sqrt(head_dim / d_qk). To
// train the same dynamics too, W_Q starts as c times the paper's init and its
// Adam learning rate is c * lr: Adam's steps do not depend on the gradient's
// scale, so W_Q / c then moves exactly as the paper's W_Q does. (The Trainer
// has one learning rate, hence this small loop.) At full width c = 1.
double query_scale(const SelectionRun& r) {
  return std::sqrt(static_cast<double>(r.dim / r.heads) / (r.d_select / r.heads));
}

// torch.optim.Adam(lr=1e-3) as in the paper: constant rate, default betas and
// epsilon, no weight decay, no clipping.
class PaperAdam {
 public:
  PaperAdam(Model& model, const SelectionRun& r) {
    params_ = prepare_for_training(model, TrainScope::All);
    std::vector<at::Tensor> queries, rest;
    for (const auto& p : params_) {
      const bool q = p.name.size() > 3 && (p.name.ends_with(".wq") || p.name.ends_with(".bq"));
      (q ? queries : rest).push_back(p.tensor);
    }
    std::vector<torch::optim::OptimizerParamGroup> groups;
    groups.emplace_back(rest, std::make_unique<torch::optim::AdamOptions>(r.lr));
    groups.emplace_back(queries,
                        std::make_unique<torch::optim::AdamOptions>(r.lr * query_scale(r)));
    adam_ = std::make_unique<torch::optim::Adam>(groups, torch::optim::AdamOptions(r.lr));
  }
  double step(const Model& model, const Batch& batch) {
    adam_->zero_grad();
    at::Tensor loss = lm_loss(training_forward(model, batch.inputs), batch.targets);
    loss.backward();
    adam_->step();
    return loss.item<double>();
  }

 private:
  std::vector<NamedParameter> params_;
  std::unique_ptr<torch::optim::Adam> adam_;
};

// PyTorch's default initialisation, which the paper's models use: nn.Linear
// weights and biases U(-1/sqrt(fan_in), 1/sqrt(fan_in)), nn.Embedding N(0, 1),
// LayerNorm 1 and 0. It matters here: with init_model's GPT-2 style
// N(0, 0.02) the attention scores start ~100x smaller and retrieval sits on
// its chance plateau for thousands of steps (measured: 24% after 3000 steps
// at N = 16, full width, where the paper converges at step 1000).
void pytorch_default_init(Model& m, uint64_t seed, double query_scale) {
  at::Generator gen = at::detail::createCPUGenerator(seed);
  at::NoGradGuard no_grad;
  auto uniform = [&](at::Tensor& t, int64_t fan_in) {
    if (!t.defined()) return;
    const double bound = 1.0 / std::sqrt(static_cast<double>(fan_in));
    t = at::empty(t.sizes(), at::kFloat).uniform_(-bound, bound, gen);
  };
  auto normal = [&](at::Tensor& t) { t = at::empty(t.sizes(), at::kFloat).normal_(0.0, 1.0, gen); };
  auto& w = m.weights;
  normal(w.tok_emb);
  normal(w.pos_emb);
  for (auto& L : w.layers) {
    for (at::Tensor* t : {&L.wq, &L.bq, &L.wk, &L.bk, &L.wv, &L.bv, &L.w_up, &L.b_up})
      uniform(*t, m.config.dim);
    uniform(L.wo, L.wo.size(1));
    uniform(L.bo, L.wo.size(1));
    uniform(L.b_down, L.w_down.size(1));
    uniform(L.w_down, L.w_down.size(1));
    // The fused copies are rebuilt from the canonical tensors by finalize().
    L.wqkv = L.bqkv = L.w_gate_up = L.b_gate_up = at::Tensor();
  }
  uniform(w.lm_head, m.config.dim);
  for (auto& L : w.layers) {  // see query_scale()
    L.wq = L.wq * query_scale;
    if (L.bq.defined()) L.bq = L.bq * query_scale;
  }
  m.finalize();
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace

SelectionRun SelectionRun::resolved() const {
  SelectionRun r = *this;
  const bool pos = is_position(r);
  if (r.layers == 0) r.layers = pos ? 2 : 4;
  if (r.steps == 0) r.steps = pos ? 1500 : 3000;
  if (r.batch == 0) r.batch = pos ? 32 : 64;
  if (r.eval_sequences == 0) r.eval_sequences = pos ? 128 : 512;
  if (r.threshold == 0) r.threshold = pos ? 0.99 : 0.95;
  if (!pos && r.pairs == 0 && r.n >= 1) r.pairs = default_retrieval_pairs(r.n);
  auto require = [](bool ok, const std::string& m) {
    if (!ok) throw Error("selection experiment: " + m);
  };
  require(r.n >= 2, "N must be at least 2 (got " + std::to_string(r.n) + ")");
  if (pos)
    copy_back_spec(r).validate();
  else
    retrieval_spec(r).validate();
  require(r.heads > 0 && r.dim > 0 && r.dim % r.heads == 0, "heads (" + std::to_string(r.heads) +
                                                                ") must divide the width (" +
                                                                std::to_string(r.dim) + ")");
  require(r.d_select > 0 && r.d_select % r.heads == 0, "d_select " + std::to_string(r.d_select) +
                                                           " must be a positive multiple of the " +
                                                           std::to_string(r.heads) + " heads");
  require(r.d_select <= r.dim, "d_select " + std::to_string(r.d_select) +
                                   " exceeds the model width " + std::to_string(r.dim));
  require(r.layers > 0 && r.hidden > 0, "layers and hidden width must be positive");
  require(r.steps > 0 && r.batch > 0 && r.eval_every > 0 && r.eval_sequences > 0,
          "steps, batch, eval interval and eval sequences must be positive");
  require(r.threshold > 0 && r.threshold <= 1, "threshold must be in (0, 1]");
  require(r.lr > 0, "learning rate must be positive");
  make_model_config(arch_for(r));  // the builder's own checks, with its messages
  return r;
}

uint64_t selection_eval_seed(uint64_t seed) { return seed ^ 0x5EEDE7A1C0FFEE11ULL; }

uint64_t selection_test_seed(uint64_t seed) { return selection_eval_seed(seed) ^ 0x7E57ULL; }

Batch selection_batch(const SelectionRun& r, uint64_t seed, int64_t first, int count,
                      SampleSplit split) {
  return is_position(r) ? copy_back_batch(copy_back_spec(r), seed, first, count, split)
                        : retrieval_batch(retrieval_spec(r), seed, first, count, split);
}

SampleSplit selection_train_split(const SelectionRun& r) {
  return r.held_out ? SampleSplit::Train : SampleSplit::Any;
}

SampleSplit selection_eval_split(const SelectionRun& r) {
  return r.held_out ? SampleSplit::HeldOut : SampleSplit::Any;
}

double selection_accuracy(const Model& model, const SelectionRun& run, uint64_t seed, int64_t first,
                          int count) {
  const SelectionRun r = run.resolved();
  at::NoGradGuard no_grad;
  int64_t correct = 0, scored = 0;
  constexpr int kChunk = 256;  // bounds the logits tensor for long evaluations
  for (int done = 0; done < count; done += kChunk) {
    const int n = std::min(kChunk, count - done);
    Batch b = selection_batch(r, seed, first + done, n, selection_eval_split(r));
    at::Tensor pred = training_forward(model, b.inputs).argmax(-1);
    at::Tensor mask = b.targets.ne(kIgnoreIndex);
    correct += (pred.eq(b.targets) & mask).sum().item<int64_t>();
    scored += mask.sum().item<int64_t>();
  }
  return scored > 0 ? static_cast<double>(correct) / static_cast<double>(scored) : 0.0;
}

SelectionRunResult run_selection(const SelectionRun& run,
                                 const std::function<void(int64_t)>& on_step, Model* trained) {
  const auto t0 = std::chrono::steady_clock::now();
  SelectionRunResult res;
  res.run = run.resolved();
  const SelectionRun& r = res.run;
  Model model = init_model(make_model_config(arch_for(r)), r.seed);
  pytorch_default_init(model, r.seed, query_scale(r));
  PaperAdam adam(model, r);
  const uint64_t eval_seed = selection_eval_seed(r.seed);
  int held = 0;
  for (int64_t step = 1; step <= r.steps; ++step) {
    // Fresh sequences every step: samples (step - 1) * batch .. of the stream.
    res.final_loss = adam.step(
        model, selection_batch(r, r.seed, (step - 1) * r.batch, r.batch, selection_train_split(r)));
    res.steps_run = step;
    if (on_step) on_step(step);
    if (step % r.eval_every != 0) continue;
    // Fresh sequences at every evaluation, as in the paper.
    const int64_t eval_index = step / r.eval_every - 1;
    const double acc =
        selection_accuracy(model, r, eval_seed, eval_index * r.eval_sequences, r.eval_sequences);
    res.evals.push_back({step, acc});
    res.best_accuracy = std::max(res.best_accuracy, acc);
    if (acc >= r.threshold) {
      if (res.converge_step < 0)
        res.converge_step = step;
      else
        ++held;
    } else if (res.converge_step >= 0) {
      held = 0;
    }
    if (r.hold >= 0 && res.converge_step >= 0 && held >= r.hold) {
      res.stopped_early = step < r.steps;
      break;
    }
  }
  if (trained != nullptr) *trained = inference_model(model);
  res.seconds = seconds_since(t0);
  return res;
}

std::vector<SelectionRun> plan_sweep(const SweepOptions& o) {
  if (!o.position && !o.retrieval) throw Error("selection sweep: no task chosen");
  if (o.d_selects.empty()) throw Error("selection sweep: no d_select values");
  if (o.retrieval && o.ns.empty()) throw Error("selection sweep: no N values");
  std::vector<SelectionRun> runs;
  auto add = [&](SelectionTask task, int n) {
    for (int d : o.d_selects) {
      SelectionRun r = o.base;
      r.task = task;
      r.n = n;
      r.d_select = d;
      r.pairs = task == SelectionTask::Retrieval ? o.base.pairs : 0;
      runs.push_back(r.resolved());
    }
  };
  if (o.position) add(SelectionTask::Position, 16);  // the paper's vocabulary of 16
  if (o.retrieval)
    for (int n : o.ns) add(SelectionTask::Retrieval, n);
  return runs;
}

SweepResult run_sweep(const SweepOptions& o) {
  if (o.jobs < 1) throw Error("selection sweep: jobs must be at least 1");
  const auto t0 = std::chrono::steady_clock::now();
  std::vector<SelectionRun> runs = plan_sweep(o);
  if (!o.full_grid)  // ascending per (task, N), so the first converged run is the smallest
    std::stable_sort(runs.begin(), runs.end(), [](const SelectionRun& a, const SelectionRun& b) {
      return std::tie(a.task, a.n, a.d_select) < std::tie(b.task, b.n, b.d_select);
    });
  // Groups of consecutive runs with the same task and N: the unit of parallelism.
  std::vector<std::vector<SelectionRun>> groups;
  int64_t total = 0;
  for (const auto& r : runs) {
    if (groups.empty() || groups.back().back().task != r.task || groups.back().back().n != r.n)
      groups.emplace_back();
    groups.back().push_back(r);
    total += r.steps;
  }
  std::optional<Progress> progress;
  std::mutex progress_mutex;
  if (o.show_progress) progress.emplace("selection", total, "steps");
  auto advance = [&](int64_t n) {
    std::lock_guard<std::mutex> lock(progress_mutex);
    if (progress) progress->advance(n);
  };

  std::vector<std::vector<SelectionRunResult>> results(groups.size());
  std::vector<SweepSummary> summaries(groups.size());
  WorkPool pool(std::min<int>(o.jobs, static_cast<int>(groups.size())));
  pool.run(static_cast<int>(groups.size()), [&](int g, int) {
    const SelectionRun& first = groups[g].front();
    SweepSummary& s = summaries[g];
    s = {first.task, first.n, std::log2(static_cast<double>(first.n)), -1, first.heads, {}};
    for (const auto& r : groups[g]) {
      if (!o.full_grid && r.task == SelectionTask::Retrieval && s.smallest_d_select > 0) {
        s.skipped.push_back(r.d_select);
        advance(r.steps);
        continue;
      }
      const bool search = o.key_rank_search && r.d_select == r.dim;
      Model trained;
      SelectionRunResult res = run_selection(
          r, [&](int64_t) { advance(1); }, search ? &trained : nullptr);
      // An early stop skips the remaining steps; count them so the ETA stays honest.
      advance(r.steps - res.steps_run);
      if (res.converge_step >= 0 && (s.smallest_d_select < 0 || r.d_select < s.smallest_d_select))
        s.smallest_d_select = r.d_select;
      if (search) {
        res.key_rank = search_kqsvd_key_rank(trained, r, o.test_sequences);
        s.smallest_kqsvd_rank_per_head = res.key_rank->smallest_rank_per_head;
      }
      results[g].push_back(std::move(res));
    }
  });
  if (progress) progress->finish();
  SweepResult out;
  for (size_t g = 0; g < groups.size(); ++g) {
    for (auto& res : results[g]) out.runs.push_back(std::move(res));
    out.summary.push_back(summaries[g]);
  }
  out.seconds = seconds_since(t0);
  return out;
}

}  // namespace thinkeys
