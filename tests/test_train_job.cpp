// The arithmetic of a training run that used to live in the CLI: steps from a
// token budget, the --qk-dim shorthand, validation batches and the resume
// decision. Expectations are worked out by hand in the comments.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <numeric>
#include <vector>

#include "train/train_job.h"
#include "train/window_dataset.h"
#include "util/error.h"

namespace thinkeys {
namespace {

namespace fs = std::filesystem;

TEST(TrainJob, TokensPerStepCountEveryRankAndMicroBatch) {
  TrainConfig c;
  c.batch_size = 4;
  c.grad_accum = 2;
  // 4 sequences x 2 micro-batches x 3 ranks x 64 tokens = 1536.
  EXPECT_EQ(tokens_per_step(c, 3, 64), 1536);
  EXPECT_EQ(tokens_per_step(c, 1, 64), 512);
}

TEST(TrainJob, TokenBudgetGivesWholeStepsAndAtLeastOne) {
  // 1536 * 6 = 9216 <= 10000 < 10752 = 1536 * 7.
  EXPECT_EQ(steps_for_token_budget(10000, 1536), 6);
  EXPECT_EQ(steps_for_token_budget(9216, 1536), 6);
  EXPECT_EQ(steps_for_token_budget(10752, 1536), 7);
  // A budget below one step still trains one step.
  EXPECT_EQ(steps_for_token_budget(100, 1536), 1);
}

TEST(TrainJob, BudgetSetsStepsAndWarmupNeverExceedsThem) {
  TrainConfig c;
  c.steps = 1000;
  c.warmup_steps = 100;
  apply_token_budget(c, 10000, 1536);
  EXPECT_EQ(c.steps, 6);
  EXPECT_EQ(c.warmup_steps, 6);

  TrainConfig none;  // no budget: steps as given, warmup already below them
  none.steps = 1000;
  none.warmup_steps = 100;
  apply_token_budget(none, 0, 1536);
  EXPECT_EQ(none.steps, 1000);
  EXPECT_EQ(none.warmup_steps, 100);

  TrainConfig short_run;  // no budget but fewer steps than warmup
  short_run.steps = 20;
  short_run.warmup_steps = 100;
  apply_token_budget(short_run, 0, 1536);
  EXPECT_EQ(short_run.warmup_steps, 20);
}

TEST(TrainJob, QkDimIsPerHeadDSelect) {
  ArchConfig a;
  a.n_heads = 4;
  EXPECT_EQ(with_qk_dim(a, 8).d_select, 32);
  EXPECT_EQ(with_qk_dim(a, 0).d_select, 0);
  a.d_select = 16;
  EXPECT_EQ(with_qk_dim(a, 0).d_select, 16);
  EXPECT_THROW(with_qk_dim(a, 8), Error);
}

TEST(TrainJob, ValidationBatchesTakeWindowsInFileOrder) {
  // Tokens 0..100 in windows of 10 (+1 target): (101 - 1) / 10 = 10 windows,
  // window w holding tokens 10w .. 10w + 10.
  std::vector<int32_t> tokens(101);
  std::iota(tokens.begin(), tokens.end(), 0);
  WindowDataset v(tokens, 10, 7, /*shuffle=*/false);
  ASSERT_EQ(v.windows(), 10);

  auto two = validation_batches(v, 3, 2);
  ASSERT_EQ(two.size(), 2u);
  EXPECT_EQ(two[0].inputs.size(0), 3);
  EXPECT_EQ(two[0].inputs[0][0].item<int64_t>(), 0);
  EXPECT_EQ(two[0].targets[0][9].item<int64_t>(), 10);
  EXPECT_EQ(two[1].inputs[0][0].item<int64_t>(), 30);  // second batch starts at window 3

  // Without a cap: windows 0-2, 3-5, 6-8 and the last one alone.
  auto all = validation_batches(v, 3, 100);
  ASSERT_EQ(all.size(), 4u);
  EXPECT_EQ(all[3].inputs.size(0), 1);
  EXPECT_EQ(all[3].inputs[0][0].item<int64_t>(), 90);
  EXPECT_EQ(all[3].targets[0][9].item<int64_t>(), 100);
}

TEST(TrainJob, ResumesOnlyWhenAskedAndATrainerStateExists) {
  const fs::path out = fs::path(::testing::TempDir()) / "thinkeys_train_job_resume";
  fs::remove_all(out);
  fs::create_directories(out / "checkpoint");
  EXPECT_FALSE(resume_checkpoint(out, true));  // a checkpoint folder without state
  std::ofstream(out / "checkpoint" / "trainer_state.json") << "{}";
  EXPECT_FALSE(resume_checkpoint(out, false));  // not asked
  auto ckpt = resume_checkpoint(out, true);
  ASSERT_TRUE(ckpt);
  EXPECT_EQ(*ckpt, out / "checkpoint");
  fs::remove_all(out);
}

}  // namespace
}  // namespace thinkeys
