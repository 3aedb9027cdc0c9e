// The synthetic selection tasks against properties derived by hand from their
// definitions (seed-experiments.md sections 1 and 2), a short training run
// that must learn retrieval well above chance, and option checking.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <map>
#include <set>

#include "experiments/selection_experiment.h"
#include "experiments/selection_key_rank.h"
#include "experiments/selection_tasks.h"
#include "model/weights.h"
#include "train/batch.h"
#include "train/training_forward.h"
#include "util/error.h"

namespace thinkeys {
namespace {

TEST(CopyBack, TiledPrefixAndScoredPositions) {
  CopyBackSpec spec;  // vocab 16, period 8, length 64
  Batch b = copy_back_batch(spec, 42, 0, 16);
  ASSERT_EQ(b.inputs.sizes(), (std::vector<int64_t>{16, 63}));
  ASSERT_EQ(b.targets.sizes(), (std::vector<int64_t>{16, 63}));
  auto in = b.inputs.accessor<int64_t, 2>();
  auto tg = b.targets.accessor<int64_t, 2>();
  for (int s = 0; s < 16; ++s) {
    // Reassemble x_0..x_63 from inputs and the last target.
    std::vector<int64_t> x(in[s].data(), in[s].data() + 63);
    x.push_back(tg[s][62]);
    for (int t = 0; t < 64; ++t) {
      EXPECT_GE(x[t], 0);
      EXPECT_LT(x[t], 16);
      if (t >= 8) EXPECT_EQ(x[t], x[t - 8]) << "sample " << s << " t " << t;
    }
    int scored = 0;
    for (int t = 0; t < 63; ++t) {
      if (t >= 7) {
        EXPECT_EQ(tg[s][t], x[t + 1]);  // next token
        ++scored;
      } else {
        EXPECT_EQ(tg[s][t], kIgnoreIndex) << "output " << t << " is not determined by the prefix";
      }
    }
    EXPECT_EQ(scored, 56);
  }
}

TEST(CopyBack, SamplesArePureFunctionsOfSeedAndIndex) {
  CopyBackSpec spec;
  Batch all = copy_back_batch(spec, 7, 0, 10);
  Batch tail = copy_back_batch(spec, 7, 4, 6);
  EXPECT_TRUE(all.inputs.slice(0, 4).equal(tail.inputs));
  Batch other = copy_back_batch(spec, 8, 0, 10);
  EXPECT_FALSE(all.inputs.equal(other.inputs));
  // Prefixes differ between samples (all ten equal would mean a broken stream).
  std::set<std::vector<int64_t>> prefixes;
  for (int s = 0; s < 10; ++s) {
    auto row = all.inputs[s].slice(0, 0, 8).contiguous();
    prefixes.insert(std::vector<int64_t>(row.data_ptr<int64_t>(), row.data_ptr<int64_t>() + 8));
  }
  EXPECT_EQ(prefixes.size(), 10u);
}

TEST(Retrieval, LayoutKeysDistinctTargetIsPairedValue) {
  for (int n : {2, 4, 16, 64}) {
    RetrievalSpec spec{n, default_retrieval_pairs(n)};
    EXPECT_EQ(spec.pairs, std::min(n, 8));
    EXPECT_EQ(spec.vocab(), 2 * n + 1);
    EXPECT_EQ(spec.sep(), 2 * n);
    EXPECT_EQ(spec.length(), 2 * spec.pairs + 2);
    Batch b = retrieval_batch(spec, 42, 0, 200);
    const int T = spec.length();
    ASSERT_EQ(b.inputs.sizes(), (std::vector<int64_t>{200, T}));
    auto in = b.inputs.accessor<int64_t, 2>();
    auto tg = b.targets.accessor<int64_t, 2>();
    std::set<int64_t> asked_slots;
    for (int s = 0; s < 200; ++s) {
      std::set<int64_t> keys;
      for (int i = 0; i < spec.pairs; ++i) {
        const int64_t k = in[s][2 * i], v = in[s][2 * i + 1];
        EXPECT_GE(k, 0);
        EXPECT_LT(k, n) << "keys are 0..N-1";
        EXPECT_GE(v, n);
        EXPECT_LT(v, 2 * n) << "values are N..2N-1";
        keys.insert(k);
      }
      EXPECT_EQ(keys.size(), static_cast<size_t>(spec.pairs)) << "keys must be distinct";
      EXPECT_EQ(in[s][T - 2], 2 * n) << "SEP";
      const int64_t q = in[s][T - 1];
      int slot = -1;
      for (int i = 0; i < spec.pairs; ++i)
        if (in[s][2 * i] == q) slot = i;
      ASSERT_GE(slot, 0) << "the query is one of the sequence's keys";
      asked_slots.insert(slot);
      for (int t = 0; t < T - 1; ++t) EXPECT_EQ(tg[s][t], kIgnoreIndex);
      EXPECT_EQ(tg[s][T - 1], in[s][2 * slot + 1]) << "target = value after the queried key";
    }
    EXPECT_EQ(asked_slots.size(), static_cast<size_t>(spec.pairs))
        << "every pair position gets queried in 200 samples";
  }
}

TEST(Retrieval, BadOptionsThrow) {
  EXPECT_THROW(retrieval_batch(RetrievalSpec{1, 1}, 0, 0, 1), Error);  // N < 2
  EXPECT_THROW(retrieval_batch(RetrievalSpec{4, 5}, 0, 0, 1), Error);  // pairs > N
  EXPECT_THROW(parse_selection_task("copy"), Error);
  SelectionRun r;
  r.n = 1;
  EXPECT_THROW(r.resolved(), Error);
  r.n = 16;
  r.d_select = 6;  // not a multiple of 4 heads
  EXPECT_THROW(r.resolved(), Error);
  r.d_select = 128;  // wider than the model
  EXPECT_THROW(r.resolved(), Error);
  r.d_select = 0;
  EXPECT_THROW(r.resolved(), Error);
  SweepOptions sweep;
  sweep.d_selects = {4, 10};
  EXPECT_THROW(plan_sweep(sweep), Error);
  sweep.d_selects = {4};
  sweep.ns = {16, 1};
  EXPECT_THROW(plan_sweep(sweep), Error);
}

std::vector<int64_t> row_of(const Batch& b, int s) {
  auto row = b.inputs[s].contiguous();
  return std::vector<int64_t>(row.data_ptr<int64_t>(), row.data_ptr<int64_t>() + row.numel());
}

// Every retrieval sequence of N = 3 keys with 2 pairs, enumerated by hand:
// 3 x 2 ordered distinct keys, 3^2 values (3..5), 2 queried slots = 108.
std::set<std::vector<int64_t>> all_sequences_n3_pairs2() {
  std::set<std::vector<int64_t>> all;
  for (int k0 = 0; k0 < 3; ++k0)
    for (int k1 = 0; k1 < 3; ++k1) {
      if (k1 == k0) continue;
      for (int v0 = 3; v0 < 6; ++v0)
        for (int v1 = 3; v1 < 6; ++v1)
          for (int q : {k0, k1}) all.insert({k0, v0, k1, v1, 6, q});
    }
  return all;
}

// The held-out class is a partition of the sequence space fixed by the tokens:
// the training stream reaches exactly the sequences outside it, the held-out
// stream exactly those inside, so the two never meet whatever the seeds.
TEST(HeldOut, SplitStreamsPartitionTheWholeSpace) {
  const RetrievalSpec spec{3, 2};
  const auto all = all_sequences_n3_pairs2();
  ASSERT_EQ(all.size(), 108u);
  std::set<std::vector<int64_t>> expect_train, expect_held;
  for (const auto& x : all) (is_held_out_sequence(x) ? expect_held : expect_train).insert(x);
  ASSERT_FALSE(expect_held.empty()) << "this small space has held-out sequences";
  std::set<std::vector<int64_t>> train, held;
  // Two seeds each, 4,000 samples: every sequence of a class turns up (each has
  // probability >= 1/108 per draw).
  for (uint64_t seed : {1, 2}) {
    Batch t = retrieval_batch(spec, seed, 0, 4000, SampleSplit::Train);
    Batch h = retrieval_batch(spec, seed + 100, 0, 4000, SampleSplit::HeldOut);
    auto tg = h.targets.accessor<int64_t, 2>();
    for (int s = 0; s < 4000; ++s) {
      train.insert(row_of(t, s));
      const auto x = row_of(h, s);
      held.insert(x);
      EXPECT_EQ(tg[s][5], x[x[5] == x[0] ? 1 : 3]) << "target = value of the queried key";
    }
  }
  EXPECT_EQ(train, expect_train);
  EXPECT_EQ(held, expect_held);
  for (const auto& x : held) EXPECT_EQ(train.count(x), 0u);
}

// A split stream keeps its sample when the unsplit stream's sample is already
// in its class, and about 1 sequence in 8 is held out.
TEST(HeldOut, SplitStreamsAgreeWithTheOriginalWhereTheyMay) {
  const RetrievalSpec spec{8, 8};
  const int n = 8000;
  Batch any = retrieval_batch(spec, 42, 0, n);
  Batch train = retrieval_batch(spec, 42, 0, n, SampleSplit::Train);
  Batch held = retrieval_batch(spec, 42, 0, n, SampleSplit::HeldOut);
  int held_count = 0;
  for (int s = 0; s < n; ++s) {
    const auto x = row_of(any, s);
    const bool h = is_held_out_sequence(x);
    held_count += h;
    EXPECT_FALSE(is_held_out_sequence(row_of(train, s)));
    EXPECT_TRUE(is_held_out_sequence(row_of(held, s)));
    EXPECT_EQ(row_of(h ? held : train, s), x) << "sample " << s;
  }
  // Binomial(8000, 1/8): mean 1000, sd 29.6; 5 sd either side.
  EXPECT_NEAR(held_count, 1000, 150);
  // Copy-back splits too (by the same rule over its input tokens).
  Batch cb = copy_back_batch(CopyBackSpec{}, 3, 0, 64, SampleSplit::HeldOut);
  for (int s = 0; s < 64; ++s) EXPECT_TRUE(is_held_out_sequence(row_of(cb, s)));
}

// N = 2 with one pair has 4 sequences; a split whose class is empty must say so.
TEST(HeldOut, EmptyClassThrowsInsteadOfLooping) {
  const RetrievalSpec spec{2, 1};
  int held = 0;
  for (int k = 0; k < 2; ++k)
    for (int v = 2; v < 4; ++v) held += is_held_out_sequence(std::vector<int64_t>{k, v, 4, k});
  if (held == 0)
    EXPECT_THROW(retrieval_batch(spec, 0, 0, 1, SampleSplit::HeldOut), Error);
  else
    EXPECT_NO_THROW(retrieval_batch(spec, 0, 0, 1, SampleSplit::HeldOut));
  if (held == 4)
    EXPECT_THROW(retrieval_batch(spec, 0, 0, 1, SampleSplit::Train), Error);
  else
    EXPECT_NO_THROW(retrieval_batch(spec, 0, 0, 1, SampleSplit::Train));
}

TEST(Selection, ResolvedDefaultsFollowThePaper) {
  SelectionRun p;
  p.task = SelectionTask::Position;
  p = p.resolved();
  EXPECT_EQ(p.steps, 1500);
  EXPECT_EQ(p.batch, 32);
  EXPECT_EQ(p.eval_sequences, 128);
  EXPECT_DOUBLE_EQ(p.threshold, 0.99);
  SelectionRun r = SelectionRun{}.resolved();
  EXPECT_EQ(r.steps, 3000);
  EXPECT_EQ(r.batch, 64);
  EXPECT_EQ(r.layers, 4);
  EXPECT_EQ(r.pairs, 8);
  EXPECT_EQ(r.eval_sequences, 512);
  EXPECT_DOUBLE_EQ(r.threshold, 0.95);
}

// A short full-width run must learn to answer from the context: with 2 pairs
// among N = 8 keys chance is 1/8, and the partial solution "one of the two
// values in the sequence" already scores 1/2, so only an accuracy well above
// 1/2 shows retrieval. (This run reaches 100% by step 300 here.)
TEST(Selection, ShortRetrievalRunLearns) {
  SelectionRun r;
  r.n = 8;
  r.pairs = 2;
  r.layers = 2;
  r.d_select = 64;
  r.steps = 400;
  r.batch = 32;
  r.eval_sequences = 256;
  r.hold = 0;  // stop at the first evaluation over the threshold
  Model m;
  SelectionRunResult res = run_selection(r, {}, &m);
  ASSERT_FALSE(res.evals.empty());
  for (const auto& e : res.evals)
    std::printf("step %lld accuracy %.3f\n", static_cast<long long>(e.step), e.accuracy);
  EXPECT_EQ(res.evals.front().step, 100);
  EXPECT_GE(res.best_accuracy, 0.9) << "chance is 0.125, either in-context value 0.5";
  // The returned model is the trained one: it does as well on other fresh sequences.
  EXPECT_GT(selection_accuracy(m, r, 12345, 0, 512), 0.8);
}

// The runtime scales scores by 1/sqrt(head_dim) where the paper scales by
// 1/sqrt(d_qk); the experiment compensates with W_Q = c W_Q(paper) and W_Q's
// Adam rate c lr, c = sqrt(head_dim / d_qk). Both show directly: PyTorch's
// default init draws W_Q from U(-c/sqrt(dim), c/sqrt(dim)), and Adam's first
// step moves every weight with a nonzero gradient by exactly its rate (m/sqrt(v)
// = g/|g|), so by c lr for W_Q and lr for W_K.
TEST(Selection, ThinQueryMapsStartAndMoveScaledByTheScoreScale) {
  for (int d_select : {16, 64}) {  // c = sqrt(16 / 4) = 2, and 1 at full width
    const double c = d_select == 16 ? 2.0 : 1.0, bound = 1.0 / std::sqrt(64.0);
    SelectionRun r;
    r.n = 8;
    r.pairs = 2;
    r.layers = 1;
    r.d_select = d_select;
    r.steps = 1;
    r.batch = 8;
    r.eval_sequences = 8;
    r.lr = 1e-12;  // the initial weights, to within 1e-12
    Model init, moved;
    run_selection(r, {}, &init);
    r.lr = 0.5;
    run_selection(r, {}, &moved);
    const at::Tensor q0 = init.weights.layers[0].wq, k0 = init.weights.layers[0].wk;
    const at::Tensor q1 = moved.weights.layers[0].wq, k1 = moved.weights.layers[0].wk;
    SCOPED_TRACE("d_select " + std::to_string(d_select));
    ASSERT_EQ(q0.size(0), d_select);
    // Over 1024+ uniform draws the largest magnitude is within 1% of the bound.
    EXPECT_LE(q0.abs().max().item<double>(), c * bound * (1 + 1e-6));
    EXPECT_GE(q0.abs().max().item<double>(), 0.99 * c * bound);
    EXPECT_LE(k0.abs().max().item<double>(), bound * (1 + 1e-6));
    EXPECT_GE(k0.abs().max().item<double>(), 0.99 * bound);
    EXPECT_NEAR((q1 - q0).abs().median().item<double>(), c * 0.5, 1e-4);
    EXPECT_NEAR((k1 - k0).abs().median().item<double>(), 0.5, 1e-4);
  }
}

// The KQ-SVD key-rank search on a trained full-width model: one compressed
// model per rank 1..head_dim-1 with that many cached key dims per head, the
// smallest rank is the first one at the threshold, and one dim short of full
// width (KQ-SVD drops only its weakest direction) keeps the accuracy.
TEST(Selection, KqsvdKeyRankSearchOnHeldOutSequences) {
  SelectionRun r;
  r.n = 8;
  r.pairs = 2;
  r.layers = 2;
  r.d_select = 64;
  r.steps = 400;
  r.batch = 32;
  r.eval_sequences = 256;
  r.hold = 0;
  r.held_out = true;
  Model m;
  SelectionRunResult res = run_selection(r, {}, &m);
  ASSERT_GE(res.best_accuracy, 0.9);
  KeyRankSearch k = search_kqsvd_key_rank(m, res.run, 1000);
  EXPECT_EQ(k.test_sequences, 1000);
  EXPECT_GT(k.full_accuracy, 0.8);
  ASSERT_EQ(k.points.size(), 15u);  // head_dim 16
  int first_ok = -1;
  for (int i = 0; i < 15; ++i) {
    EXPECT_EQ(k.points[i].rank_per_head, i + 1);
    EXPECT_EQ(k.points[i].key_width_total, 4 * (i + 1));
    if (first_ok < 0 && k.points[i].accuracy >= 0.95) first_ok = i + 1;
  }
  EXPECT_EQ(k.smallest_rank_per_head, first_ok);
  EXPECT_GT(k.points.back().accuracy, k.full_accuracy - 0.05);
  SelectionRun thin = res.run;
  thin.d_select = 16;
  EXPECT_THROW(search_kqsvd_key_rank(m, thin, 10), Error);
}

}  // namespace
}  // namespace thinkeys
