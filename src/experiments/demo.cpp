#include "experiments/demo.h"

#include <chrono>
#include <mutex>
#include <optional>

#include "checkpoint/model_loader.h"
#include "compress/compressor.h"
#include "eval/perplexity.h"
#include "experiments/selection_experiment.h"
#include "model/kv_cache.h"
#include "tokenizer/tokenizer.h"
#include "train/batch.h"
#include "util/error.h"
#include "util/progress.h"
#include "util/text_file.h"
#include "util/work_pool.h"

namespace fs = std::filesystem;

namespace thinkeys {
namespace {

// Bytes per token of a cache actually allocated for `config` (f32 rows), so
// the saving shown is the runtime's, not a formula's.
double allocated_bytes_per_token(const ModelConfig& config) {
  constexpr int kCapacity = 1024;
  KVCache cache(config, kCapacity);
  return static_cast<double>(cache.allocated_bytes()) / kCapacity;
}

DemoRow row_for(const std::string& part, const std::string& variant, const Model& m) {
  DemoRow r;
  r.part = part;
  r.variant = variant;
  r.key_width = m.config.key_width(0);
  r.head_dim = m.config.head_dim;
  r.kv_bytes_allocated = allocated_bytes_per_token(m.config);
  r.kv_bytes_f16 = m.config.kv_bytes_per_token(2, 2);
  return r;
}

// Task sequences laid end to end; calibration windows of one sequence length
// then see exactly the positions the model was trained on.
std::vector<int32_t> calibration_stream(const SelectionRun& run, int sequences) {
  RetrievalSpec spec{run.n, run.pairs};
  Batch b = retrieval_batch(spec, run.seed ^ 0xCA11B8A7E5ULL, 0, sequences);
  at::Tensor flat = b.inputs.reshape({-1}).to(at::kInt).contiguous();
  const int32_t* p = flat.data_ptr<int32_t>();
  return std::vector<int32_t>(p, p + flat.numel());
}

void retrieval_part(const DemoOptions& o, DemoResult& out) {
  SelectionRun base;
  base.task = SelectionTask::Retrieval;
  base.n = o.n;
  base.steps = o.max_steps;
  base.seed = o.seed;
  base.hold = 1;  // a demo, not a measurement of the converge step's stability
  std::vector<int> widths = {base.dim};
  for (int d : o.thin_d_selects) widths.push_back(d);
  std::vector<SelectionRun> runs;
  for (int d : widths) {
    SelectionRun r = base;
    r.d_select = d;
    runs.push_back(r.resolved());
  }
  // The test set: fresh sequences from a stream neither training nor the
  // training-time evaluations touch.
  const uint64_t test_seed = selection_test_seed(o.seed);
  std::optional<Progress> progress;
  std::mutex progress_mutex;
  if (o.show_progress) progress.emplace("demo: training", o.max_steps * runs.size(), "steps");
  auto advance = [&](int64_t n) {
    std::lock_guard<std::mutex> lock(progress_mutex);
    if (progress) progress->advance(n);
  };
  std::vector<Model> models(runs.size());
  std::vector<SelectionRunResult> results(runs.size());
  WorkPool pool(std::max(1, std::min<int>(o.jobs, static_cast<int>(runs.size()))));
  pool.run(static_cast<int>(runs.size()), [&](int i, int) {
    results[i] = run_selection(
        runs[i], [&](int64_t) { advance(1); }, &models[i]);
    advance(runs[i].steps - results[i].steps_run);
  });
  if (progress) progress->finish();
  for (size_t i = 0; i < runs.size(); ++i) {
    DemoRow row =
        row_for("retrieval",
                i == 0 ? "trained, full keys"
                       : "trained, thin keys (d_select " + std::to_string(runs[i].d_select) + ")",
                models[i]);
    row.accuracy = selection_accuracy(models[i], runs[i], test_seed, 0, o.eval_sequences);
    row.steps = results[i].steps_run;
    row.converge_step = results[i].converge_step;
    out.rows.push_back(row);
  }
  const Model& full = models[0];

  const std::vector<int32_t> calib = calibration_stream(runs[0], o.calibration_sequences);
  for (const char* method : {"svd", "kqsvd"}) {
    for (int rank : o.compress_ranks) {
      if (rank >= full.config.head_dim) continue;
      CompressOptions co;
      co.method = parse_compress_method(method);
      co.ranks.key_rank = rank;
      co.calibration.ctx = RetrievalSpec{runs[0].n, runs[0].pairs}.length();
      co.calibration.tokens = static_cast<int64_t>(calib.size());
      co.calibration.show_progress = false;
      Model c = compress_model(full, co,
                               std::string(method) == "kqsvd" ? std::span<const int32_t>(calib)
                                                              : std::span<const int32_t>());
      DemoRow row = row_for(
          "retrieval",
          std::string("full, keys compressed (") + method + ", r " + std::to_string(rank) + ")", c);
      row.accuracy = selection_accuracy(c, runs[0], test_seed, 0, o.eval_sequences);
      out.rows.push_back(row);
    }
  }
}

void stories_part(const DemoOptions& o, DemoResult& out) {
  const fs::path dir = *o.shared_dir;
  const fs::path model_path = dir / "models/stories260K/stories260K.bin";
  const fs::path text_path = dir / "data/tinystories/tinystories_val_head.txt";
  if (!fs::exists(model_path) || !fs::exists(text_path)) {
    out.notes.push_back("stories260K skipped: " + model_path.string() + " or " +
                        text_path.string() + " not found");
    return;
  }
  Model original = load_model(model_path);
  auto tok = load_tokenizer(model_path, original.config.vocab_size);
  std::vector<int32_t> ids;
  auto bos = original.config.bos_id ? original.config.bos_id : tok->bos_id();
  if (bos) ids.push_back(*bos);
  const std::vector<int32_t> body = tok->encode(read_file_bytes(text_path));
  ids.insert(ids.end(), body.begin(), body.end());
  // Scored slice first, calibration text after it: the two never overlap.
  const int64_t n_eval = std::min<int64_t>(o.story_tokens, static_cast<int64_t>(ids.size()) / 2);
  std::span<const int32_t> eval_tokens(ids.data(), static_cast<size_t>(n_eval));
  std::span<const int32_t> calib_tokens(ids.data() + n_eval, ids.size() - n_eval);

  PerplexityOptions po;
  po.ctx = std::min(512, original.config.max_positions);
  po.stride = po.ctx / 2;
  po.show_progress = false;
  CompressOptions co;
  co.method = CompressMethod::KqSvd;
  co.rope = RopeMode::Latent;
  co.ranks.key_ratio = 0.5;
  co.calibration.ctx = po.ctx;
  co.calibration.tokens = std::min<int64_t>(32768, static_cast<int64_t>(calib_tokens.size()));
  co.calibration.show_progress = false;
  Model compressed = compress_model(original, co, calib_tokens);

  const std::string ppl_note = " (ctx " + std::to_string(po.ctx) + ", stride " +
                               std::to_string(po.stride) + ", " + std::to_string(n_eval) +
                               " tokens)";
  PerplexityResult base = evaluate_perplexity(original, eval_tokens, po);
  DemoRow r0 = row_for("stories260K", "original" + ppl_note, original);
  r0.perplexity = base.perplexity;
  out.rows.push_back(r0);
  PerplexityResult comp = evaluate_perplexity(compressed, eval_tokens, po, {}, &original);
  DemoRow r1 = row_for("stories260K", "keys kqsvd 1/2, RoPE latent", compressed);
  r1.perplexity = comp.perplexity;
  r1.kl = comp.kl_mean;
  r1.top1 = comp.top1_agreement;
  out.rows.push_back(r1);
}

}  // namespace

DemoResult run_demo(const DemoOptions& o) {
  const auto t0 = std::chrono::steady_clock::now();
  DemoResult out;
  retrieval_part(o, out);
  if (o.shared_dir)
    stories_part(o, out);
  else
    out.notes.push_back("stories260K skipped: no shared directory (../shared or $THINKEYS_SHARED)");
  out.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return out;
}

}  // namespace thinkeys
