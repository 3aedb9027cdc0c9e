#include "experiments/selection_key_rank.h"

#include "compress/compressor.h"
#include "model/weights.h"
#include "train/batch.h"
#include "util/error.h"

namespace thinkeys {
namespace {

// Task sequences laid end to end; calibration windows of one sequence length
// then see exactly the positions the model was trained on.
std::vector<int32_t> calibration_tokens(const SelectionRun& run, int sequences) {
  Batch b =
      selection_batch(run, run.seed ^ 0xCA11B8A7E5ULL, 0, sequences, selection_train_split(run));
  at::Tensor flat = b.inputs.reshape({-1}).to(at::kInt).contiguous();
  const int32_t* p = flat.data_ptr<int32_t>();
  return std::vector<int32_t>(p, p + flat.numel());
}

}  // namespace

KeyRankSearch search_kqsvd_key_rank(const Model& full, const SelectionRun& run,
                                    int test_sequences) {
  if (test_sequences < 1) throw Error("key-rank search: test sequences must be positive");
  const SelectionRun r = run.resolved();
  if (r.d_select != r.dim)
    throw Error("key-rank search: needs a full-width model (d_select " +
                std::to_string(r.d_select) + " of " + std::to_string(r.dim) + ")");
  constexpr int kCalibrationSequences = 512;
  const uint64_t test_seed = selection_test_seed(r.seed);
  KeyRankSearch out;
  out.test_sequences = test_sequences;
  out.full_accuracy = selection_accuracy(full, r, test_seed, 0, test_sequences);
  const std::vector<int32_t> calib = calibration_tokens(r, kCalibrationSequences);
  const int seq_len = static_cast<int>(calib.size()) / kCalibrationSequences;
  for (int rank = 1; rank < full.config.head_dim; ++rank) {
    CompressOptions co;
    co.method = CompressMethod::KqSvd;
    co.ranks.key_rank = rank;
    co.calibration.ctx = seq_len;
    co.calibration.tokens = static_cast<int64_t>(calib.size());
    co.calibration.show_progress = false;
    const Model c = compress_model(full, co, calib);
    KeyRankPoint p;
    p.rank_per_head = c.config.key_width(0);
    p.key_width_total = p.rank_per_head * c.config.key_heads();
    p.accuracy = selection_accuracy(c, r, test_seed, 0, test_sequences);
    if (out.smallest_rank_per_head < 0 && p.accuracy >= r.threshold)
      out.smallest_rank_per_head = p.rank_per_head;
    out.points.push_back(p);
  }
  return out;
}

}  // namespace thinkeys
