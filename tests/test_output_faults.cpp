// Outputs survive faults: convert, compress, train (checkpoints and the final
// model) and finetune are killed with SIGKILL in the middle of writing their
// safetensors (THINKEYS_TEST_KILL_AFTER_TENSORS, a test hook in
// io/safetensors.cpp), after which the previous output must be byte-identical
// and the next, uninterrupted run must succeed, give a loadable model and
// remove the killed run's temporary. The training run's model files are also
// killed around the directory exchange that publishes them together
// (THINKEYS_TEST_KILL_AT, util/atomic_output.cpp).
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <map>
#include <nlohmann/json.hpp>

#include "checkpoint/hf_checkpoint.h"
#include "io/safetensors.h"
#include "model/weights.h"
#include "test_support.h"

namespace thinkeys {
namespace {

namespace fs = std::filesystem;

constexpr int kKilled = 128 + 9;  // `timeout` reports a child killed by SIGKILL like a shell

// Runs the CLI; `kill_after_tensors` > 0 or `kill_at` ("before-exchange:3",
// util/atomic_output.cpp) makes it SIGKILL itself at that point.
int run_cli(const std::string& args, long kill_after_tensors = 0, const std::string& kill_at = {}) {
  std::string env =
      kill_after_tensors > 0
          ? "THINKEYS_TEST_KILL_AFTER_TENSORS=" + std::to_string(kill_after_tensors) + " "
          : "";
  if (!kill_at.empty()) env += "THINKEYS_TEST_KILL_AT=" + kill_at + " ";
  std::string cmd = env + "timeout 300 " + std::string(THINKEYS_CLI_PATH) + " --threads 1 " + args +
                    " >/dev/null 2>&1 </dev/null";
  int raw = std::system(cmd.c_str());
  return WIFEXITED(raw) ? WEXITSTATUS(raw) : -1;
}

// Every regular file under `dir` (recursively, skipping the writers' hidden
// temporaries) with its bytes.
std::map<std::string, std::string> snapshot(const fs::path& dir) {
  std::map<std::string, std::string> files;
  for (const auto& e : fs::recursive_directory_iterator(dir)) {
    auto rel = fs::relative(e.path(), dir).string();
    if (rel.find("/.") != std::string::npos || rel.starts_with(".")) continue;
    if (e.is_regular_file() && rel != "train_log.jsonl") files[rel] = test::read_bytes(e.path());
  }
  return files;
}

void expect_same(const std::map<std::string, std::string>& before,
                 const std::map<std::string, std::string>& after) {
  ASSERT_FALSE(before.empty());
  EXPECT_EQ(before.size(), after.size());
  for (const auto& [name, bytes] : before) {
    auto it = after.find(name);
    ASSERT_NE(it, after.end()) << name << " disappeared";
    EXPECT_TRUE(it->second == bytes) << name << " changed after an interrupted write";
  }
}

// The temporaries interrupted writers of `target` left beside it.
std::vector<fs::path> leftovers(const fs::path& target) {
  std::vector<fs::path> out;
  const std::string prefix = "." + target.filename().string() + ".tmp-";
  for (const auto& e : fs::directory_iterator(target.parent_path()))
    if (e.path().filename().string().starts_with(prefix)) out.push_back(e.path());
  return out;
}

// Hidden entries anywhere under `dir` (temporaries of writes inside it).
std::vector<std::string> hidden_inside(const fs::path& dir) {
  std::vector<std::string> out;
  for (const auto& e : fs::recursive_directory_iterator(dir))
    if (e.path().filename().string().starts_with(".")) out.push_back(e.path().string());
  return out;
}

class OutputFaults : public ::testing::Test {
 protected:
  void SetUp() override {
    THINKEYS_REQUIRE_SHARED(model, "models/stories260K/stories260K.bin");
    model_ = model.string();
    test::write_bytes(
        tmp_ / "data.txt",
        test::random_sentences(
            5, {"Once", "upon", "a", "time", "the", "cat", "sat", "on", "mat", "Lily"}, 2000));
  }
  // Runs `args` (which writes `out`) once killed after `kill_after` tensors, then
  // checks `out` is as before and that the same command then completes.
  void kill_then_rerun(const std::string& args, const fs::path& out, long kill_after) {
    const auto before = snapshot(out);
    ASSERT_EQ(run_cli(args, kill_after), kKilled) << "the test hook did not fire: " << args;
    expect_same(before, snapshot(out));
    (void)load_hf_checkpoint(out);  // still loads
    // The killed writer's temporary is left; the next run removes it.
    EXPECT_EQ(leftovers(out).size(), 1u);
    ASSERT_EQ(run_cli(args), 0) << args;
    (void)load_hf_checkpoint(out);
    EXPECT_TRUE(leftovers(out).empty());
  }
  test::TempDir tmp_;
  std::string model_;
};

TEST_F(OutputFaults, ConvertKilledMidWriteKeepsThePreviousModel) {
  const auto out = tmp_ / "conv";
  ASSERT_EQ(run_cli("convert " + model_ + " -o " + out.string()), 0);
  kill_then_rerun("convert " + model_ + " --dtype f16 -o " + out.string(), out, 1);
  EXPECT_EQ(SafetensorsFile(out / "model.safetensors").at("model.norm.weight").dtype, DType::F16);
}

TEST_F(OutputFaults, CompressKilledMidWriteKeepsThePreviousModel) {
  const auto out = tmp_ / "thin";
  const std::string base = "compress " + model_ + " --method svd --rope post -o " + out.string();
  ASSERT_EQ(run_cli(base + " --key-rank 4"), 0);
  kill_then_rerun(base + " --key-rank 2", out, 3);
  EXPECT_EQ(load_hf_checkpoint(out).config.key_width(0), 2);
}

TEST_F(OutputFaults, TrainKilledWhileCheckpointingOrSavingResumes) {
  const auto out = tmp_ / "run";
  const std::string train =
      "train --arch llama --dim 16 --layers 1 --heads 2 --kv-heads 1 --ctx 16 "
      "--batch 2 --warmup 1 --checkpoint-every 1 --tokenizer " +
      fs::path(model_).parent_path().string() + "/tok512.bin --data " +
      (tmp_ / "data.txt").string() + " --cache-dir " + (tmp_ / "cache").string() + " -o " +
      out.string();
  ASSERT_EQ(run_cli(train + " --steps 2"), 0);
  const long tensors =
      static_cast<long>(SafetensorsFile(out / "checkpoint" / "model.safetensors").tensors().size());
  const auto after_two = snapshot(out);

  // Killed while writing the step-3 checkpoint: step 2's checkpoint and model remain.
  ASSERT_EQ(run_cli(train + " --resume --steps 4", 1), kKilled);
  expect_same(after_two, snapshot(out));

  // Killed while writing the final model, after the step-3 and step-4 checkpoints
  // are complete: the step-2 model files remain and the checkpoint is step 4's.
  ASSERT_EQ(run_cli(train + " --resume --steps 4", 2 * tensors + 1), kKilled);
  for (const char* f : {"config.json", "model.safetensors"})
    EXPECT_TRUE(test::read_bytes(out / f) == after_two.at(f)) << f << " changed";
  EXPECT_NE(test::read_bytes(out / "checkpoint" / "trainer_state.json").find("\"step\": 4"),
            std::string::npos);
  (void)load_hf_checkpoint(out);

  ASSERT_EQ(run_cli(train + " --resume --steps 5"), 0);
  EXPECT_NE(test::read_bytes(out / "checkpoint" / "trainer_state.json").find("\"step\": 5"),
            std::string::npos);
  (void)load_hf_checkpoint(out);
}

// The final model is a set of files (config.json, model.safetensors, the
// tokenizer) beside the run's log and checkpoint/. Killed just before or
// just after the directory exchange that publishes it, the set is wholly
// the previous model or wholly the new one; the next run removes what the
// killed one left and resumes.
TEST_F(OutputFaults, TrainModelFilesAreReplacedTogether) {
  const auto out = tmp_ / "run";
  const std::string tok = fs::path(model_).parent_path().string() + "/tok512.bin";
  const std::string train =
      "train --arch llama --dim 16 --layers 1 --heads 2 --kv-heads 1 --ctx 16 "
      "--batch 2 --warmup 1 --checkpoint-every 1 --tokenizer " +
      tok + " --data " + (tmp_ / "data.txt").string() + " --cache-dir " +
      (tmp_ / "cache").string() + " -o " + out.string();
  ASSERT_EQ(run_cli(train + " --steps 2"), 0);
  const auto model_files = [&] {
    std::map<std::string, std::string> m;
    for (const char* f : {"config.json", "model.safetensors", "tok512.bin"})
      m[f] = test::read_bytes(out / f);
    return m;
  };
  const auto step2 = model_files();
  const std::string log2 = test::read_bytes(out / "train_log.jsonl");

  // The step-3 and step-4 checkpoints are the 1st and 2nd directory
  // replacements of `--resume --steps 4`, the final model the 3rd.
  ASSERT_EQ(run_cli(train + " --resume --steps 4", 0, "before-exchange:3"), kKilled);
  EXPECT_TRUE(model_files() == step2) << "a model file changed before the exchange";
  EXPECT_NE(test::read_bytes(out / "checkpoint" / "trainer_state.json").find("\"step\": 4"),
            std::string::npos);
  // The log kept what the killed run appended (it moves along as a link).
  EXPECT_GT(test::read_bytes(out / "train_log.jsonl").size(), log2.size());
  (void)load_hf_checkpoint(out);
  ASSERT_EQ(leftovers(out).size(), 1u);  // the complete new directory, never published

  ASSERT_EQ(run_cli(train + " --resume --steps 5", 0, "after-exchange:2"), kKilled);
  const auto step5 = model_files();
  EXPECT_TRUE(step5.at("model.safetensors") != step2.at("model.safetensors"))
      << "the new model was not published";
  EXPECT_TRUE(step5.at("tok512.bin") == test::read_bytes(tok));
  EXPECT_NE(test::read_bytes(out / "checkpoint" / "trainer_state.json").find("\"step\": 5"),
            std::string::npos);
  (void)load_hf_checkpoint(out);
  // The earlier run's leftover is gone; this run's (the step-2 model it
  // replaced) is left.
  ASSERT_EQ(leftovers(out).size(), 1u);
  EXPECT_TRUE(test::read_bytes(leftovers(out)[0] / "model.safetensors") ==
              step2.at("model.safetensors"));

  ASSERT_EQ(run_cli(train + " --resume --steps 6"), 0);
  (void)load_hf_checkpoint(out);
  EXPECT_TRUE(leftovers(out).empty());
  EXPECT_TRUE(hidden_inside(out).empty()) << hidden_inside(out).front();
  EXPECT_TRUE(leftovers(out / "checkpoint").empty());
}

TEST_F(OutputFaults, FinetuneKilledMidWriteKeepsThePreviousModel) {
  const auto base = tmp_ / "base", out = tmp_ / "ft";
  ASSERT_EQ(run_cli("convert " + model_ + " -o " + base.string()), 0);
  const std::string ft = "finetune " + base.string() + " --train qk --loss lm --data " +
                         (tmp_ / "data.txt").string() + " --cache-dir " +
                         (tmp_ / "cache").string() +
                         " --ctx 16 --batch 2 --max-tokens 200 --lr 1e-2 -o " + out.string();
  ASSERT_EQ(run_cli(ft), 0);
  kill_then_rerun(ft + " --seed 7", out, 2);
}

// finetune --checkpoint-every / --resume: a run killed while writing its
// second checkpoint (step 4 of 6) resumes from the first (step 2) and ends
// with exactly the weights of a run that was never interrupted.
TEST_F(OutputFaults, FinetuneResumedAfterAKillEqualsTheUninterruptedRun) {
  const auto base = tmp_ / "base", full = tmp_ / "ft-full", part = tmp_ / "ft-part";
  ASSERT_EQ(run_cli("convert " + model_ + " -o " + base.string()), 0);
  // 200 tokens = 12 windows of 16 + 1, 2 per step: 6 steps, checkpoints at 2, 4, 6.
  const std::string ft = "finetune " + base.string() + " --train qk --loss lm --data " +
                         (tmp_ / "data.txt").string() + " --cache-dir " +
                         (tmp_ / "cache").string() +
                         " --ctx 16 --batch 2 --max-tokens 200 --lr 1e-2 --checkpoint-every 2";
  ASSERT_EQ(run_cli(ft + " -o " + full.string()), 0);
  ASSERT_NE(test::read_bytes(full / "checkpoint" / "trainer_state.json").find("\"step\": 6"),
            std::string::npos);
  // Tensors one checkpoint writes: the (N+1)-th written is inside the second.
  const long per_checkpoint = static_cast<long>(
      SafetensorsFile(full / "checkpoint" / "model.safetensors").tensors().size());
  ASSERT_GT(per_checkpoint, 0);
  ASSERT_EQ(run_cli(ft + " -o " + part.string(), per_checkpoint + 1), kKilled);
  ASSERT_NE(test::read_bytes(part / "checkpoint" / "trainer_state.json").find("\"step\": 2"),
            std::string::npos);
  ASSERT_FALSE(fs::exists(part / "config.json")) << "the killed run saved no model";
  const test::CliResult resumed =
      test::run_cli("--threads 1 " + ft + " --resume --json -o " + part.string(), 300);
  ASSERT_EQ(resumed.status, 0) << resumed.err;
  const auto j = nlohmann::json::parse(resumed.out);
  EXPECT_EQ(j["result"]["resumed_at_step"], 2) << "a fresh restart would also match the weights";
  EXPECT_EQ(j["result"]["steps"], 6);
  const Model a = load_hf_checkpoint(full), b = load_hf_checkpoint(part);
  ASSERT_EQ(a.weights.layers.size(), b.weights.layers.size());
  for (size_t l = 0; l < a.weights.layers.size(); ++l) {
    EXPECT_TRUE(at::equal(a.weights.layers[l].wq, b.weights.layers[l].wq)) << "layer " << l;
    EXPECT_TRUE(at::equal(a.weights.layers[l].wk, b.weights.layers[l].wk)) << "layer " << l;
  }
  EXPECT_TRUE(test::read_bytes(full / "model.safetensors") ==
              test::read_bytes(part / "model.safetensors"));
}

}  // namespace
}  // namespace thinkeys
