// Bad input through the real CLI: each case must end with exit status 1 and
// exactly one "error: ..." line on stderr that names the problem — never a
// crash, a hang or a silent success. CI also runs this under ASan + UBSan.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <nlohmann/json.hpp>

#include "checkpoint/model_loader.h"
#include "model/random_init.h"
#include "test_support.h"

namespace thinkeys {
namespace {

using test::CliResult;
using test::expect_clean_failure;
using test::run_cli;

// One clear line mentioning `needle`, exit status 1.
ModelConfig tiny_llama() {
  ModelConfig c = llama_config({64, 16, 1, 2, 1, 8, 32, 64});
  c.bos_id = 1;
  c.eos_id = 2;
  return c;
}

// A valid checkpoint directory to corrupt piece by piece.
class BadCheckpoint : public ::testing::Test {
 protected:
  void SetUp() override {
    save_model(random_model(tiny_llama(), 1), dir_.path() / "m", DType::F32);
    model_ = dir_.path() / "m";
  }
  // Rewrites config.json through `edit`.
  template <typename Edit>
  void edit_config(Edit edit) {
    auto j = nlohmann::json::parse(test::read_bytes(model_ / "config.json"));
    edit(j);
    test::write_bytes(model_ / "config.json", j.dump());
  }
  std::string info() const { return "info " + model_.string(); }

  test::TempDir dir_;
  std::filesystem::path model_;
};

TEST_F(BadCheckpoint, ValidCheckpointLoads) {
  auto r = run_cli(info());
  EXPECT_EQ(r.status, 0) << r.err;
}

TEST_F(BadCheckpoint, MissingConfig) {
  std::filesystem::remove(model_ / "config.json");
  expect_clean_failure(run_cli(info()), "config.json");
}

TEST_F(BadCheckpoint, TruncatedSafetensors) {
  auto bytes = test::read_bytes(model_ / "model.safetensors");
  test::write_bytes(model_ / "model.safetensors", bytes.substr(0, bytes.size() - 100));
  expect_clean_failure(run_cli(info()), "model.safetensors");
}

TEST_F(BadCheckpoint, FileShorterThanHeaderLength) {
  test::write_bytes(model_ / "model.safetensors", std::string("\x10\x00\x00", 3));
  expect_clean_failure(run_cli(info()), "truncated");
}

TEST_F(BadCheckpoint, HeaderLengthPastEndOfFile) {
  auto bytes = test::read_bytes(model_ / "model.safetensors");
  bytes[5] = '\x01';  // header length now about 2^40
  test::write_bytes(model_ / "model.safetensors", bytes);
  expect_clean_failure(run_cli(info()), "past the end");
}

TEST_F(BadCheckpoint, MalformedHeaderJson) {
  auto bytes = test::read_bytes(model_ / "model.safetensors");
  bytes[8] = '[';
  bytes[9] = '}';
  test::write_bytes(model_ / "model.safetensors", bytes);
  expect_clean_failure(run_cli(info()), "malformed");
}

TEST_F(BadCheckpoint, ShapeDisagreesWithConfig) {
  edit_config([](nlohmann::json& j) { j["intermediate_size"] = 48; });
  expect_clean_failure(run_cli(info()), "shape");
}

TEST_F(BadCheckpoint, UnsupportedDtype) {
  // Rewrite one tensor's header entry as I32 (same byte size as F32).
  auto bytes = test::read_bytes(model_ / "model.safetensors");
  uint64_t len = 0;
  for (int i = 7; i >= 0; --i) len = (len << 8) | static_cast<uint8_t>(bytes[i]);
  std::string header = bytes.substr(8, len);
  auto pos = header.find("\"F32\"");
  ASSERT_NE(pos, std::string::npos);
  header.replace(pos, 5, "\"I32\"");
  test::write_bytes(model_ / "model.safetensors",
                    bytes.substr(0, 8) + header + bytes.substr(8 + len));
  expect_clean_failure(run_cli(info()), "unsupported dtype");
}

TEST_F(BadCheckpoint, UnknownArchitecture) {
  edit_config([](nlohmann::json& j) {
    j["architectures"] = {"BertForMaskedLM"};
    j["model_type"] = "bert";
  });
  expect_clean_failure(run_cli(info()), "BertForMaskedLM");
}

TEST_F(BadCheckpoint, UnsupportedRopeScaling) {
  edit_config([](nlohmann::json& j) {
    j["rope_scaling"] = {{"rope_type", "yarn"}, {"factor", 4.0}};
  });
  expect_clean_failure(run_cli(info()), "rope_scaling");
}

TEST_F(BadCheckpoint, HeadsNotDividingKvHeads) {
  edit_config([](nlohmann::json& j) { j["num_key_value_heads"] = 3; });
  expect_clean_failure(run_cli(info()), "num_key_value_heads");
}

TEST_F(BadCheckpoint, MalformedConfigJson) {
  test::write_bytes(model_ / "config.json", "{\"architectures\": [");
  expect_clean_failure(run_cli(info()), "malformed JSON");
}

TEST(BadInput, MissingModel) {
  expect_clean_failure(run_cli("info /nonexistent/model"), "not found");
}

TEST(BadInput, TruncatedLlama2cCheckpoint) {
  THINKEYS_REQUIRE_SHARED(model, "models/stories260K/stories260K.bin");
  test::TempDir dir;
  test::write_bytes(dir / "cut.bin", test::read_bytes(model).substr(0, 5000));
  expect_clean_failure(run_cli("info " + (dir / "cut.bin").string()), "does not match");
}

class BadEval : public ::testing::Test {
 protected:
  void SetUp() override {
    THINKEYS_REQUIRE_SHARED(model, "models/stories260K/stories260K.bin");
    model_ = model;
    test::write_bytes(dir_ / "text.txt", "Once upon a time there was a cat.\n");
    test::write_bytes(dir_ / "empty.txt", "");
  }
  std::string eval(const std::string& file, const std::string& extra) const {
    return "eval " + model_.string() + " --data " + (dir_ / file).string() + " " + extra;
  }
  test::TempDir dir_;
  std::filesystem::path model_;
};

TEST_F(BadEval, EmptyFile) { expect_clean_failure(run_cli(eval("empty.txt", "")), "empty"); }
TEST_F(BadEval, MissingFile) { expect_clean_failure(run_cli(eval("nope.txt", "")), "not found"); }
TEST_F(BadEval, ZeroCtx) { expect_clean_failure(run_cli(eval("text.txt", "--ctx 0")), "--ctx"); }
TEST_F(BadEval, NegativeCtx) {
  expect_clean_failure(run_cli(eval("text.txt", "--ctx=-4")), "--ctx");
}
TEST_F(BadEval, StrideAboveCtx) {
  expect_clean_failure(run_cli(eval("text.txt", "--ctx 8 --stride 9")), "--stride");
}
TEST_F(BadEval, ValidRunSucceeds) {
  auto r = run_cli(eval("text.txt", "--ctx 8 --stride 4 --json"));
  ASSERT_EQ(r.status, 0) << r.err;
  auto j = nlohmann::json::parse(r.out);
  EXPECT_GT(j["perplexity"].get<double>(), 1.0);
}

TEST(BadInput, GenerateBadTopP) {
  THINKEYS_REQUIRE_SHARED(model, "models/stories260K/stories260K.bin");
  expect_clean_failure(run_cli("generate " + model.string() + " -n 4 --temp 1 --top-p 2"), "top-p");
}

TEST(BadInput, CompressQueriesRefusesACalibratedMethod) {
  THINKEYS_REQUIRE_SHARED(model, "models/stories260K/stories260K.bin");
  test::TempDir dir;
  expect_clean_failure(run_cli("compress " + model.string() + " -o " + (dir / "q").string() +
                               " --target queries --key-ratio 0.5 --method kqsvd"),
                       "--target queries");
  EXPECT_FALSE(std::filesystem::exists(dir / "q"));
}

TEST(BadInput, BenchRefusesUnknownShapesAndSizes) {
  // Refused before anything is allocated or timed.
  expect_clean_failure(run_cli("bench --decode --decode-shape mqa"), "unknown decode bench shape");
  expect_clean_failure(run_cli("bench --decode --decode-cache thin-int3"), "thin-int3");
  // Range errors come from the command-line parser: its own exit code and
  // message, naming the flag.
  for (const char* bad : {"--decode-ctx 0", "--decode-batch -1"}) {
    const auto r = run_cli(std::string("bench --decode ") + bad);
    EXPECT_NE(r.status, 0) << bad;
    EXPECT_NE(r.err.find(std::string(bad).substr(0, std::string(bad).find(' '))), std::string::npos)
        << r.err;
  }
}

TEST(BadInput, PlanNamesWhatIsWrong) {
  // `thinkeys plan` on configs alone (tests/data/configs): a missing field,
  // weights larger than the budget, a key rank wider than the head.
  const std::string configs = std::string(THINKEYS_TEST_DATA) + "/configs/";
  expect_clean_failure(run_cli("plan " + configs + "missing-layers.json --memory 24GiB"),
                       "missing field 'num_hidden_layers'");
  expect_clean_failure(run_cli("plan " + configs + "llama-2-7b.json --memory 12GiB"),
                       "leaves nothing for the KV cache");
  expect_clean_failure(run_cli("plan " + configs + "llama-2-7b.json --memory 80GB --key-rank 129"),
                       "key rank 129 is larger than the head");
  expect_clean_failure(run_cli("plan " + configs + "llama-2-7b.json --memory '24 parsecs'"),
                       "memory size");
  expect_clean_failure(run_cli("plan " + configs + "llama-2-7b.json --memory 80GB --cache-k int3"),
                       "unknown cache dtype 'int3'");
  expect_clean_failure(run_cli("plan " + configs + "llama-2-7b.json --memory 80GB --weights f8"),
                       "unknown weight dtype 'f8'");
  expect_clean_failure(
      run_cli("plan " + configs + "llama-2-7b.json --memory 80GB --bandwidth fast"),
      "not a number of GB/s");
  expect_clean_failure(run_cli("plan " + configs + "no-such.json --memory 80GB"), "not found");
}

}  // namespace
}  // namespace thinkeys
