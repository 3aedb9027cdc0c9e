#pragma once
// Helpers for tests: locating ../shared, scratch directories, running the CLI.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "util/shared_data.h"

namespace thinkeys::test {

inline std::optional<std::filesystem::path> shared_file(const std::string& rel) {
  auto dir = find_shared_dir();
  if (!dir || !std::filesystem::exists(*dir / rel)) return std::nullopt;
  return *dir / rel;
}

// Shared data (../shared or $THINKEYS_SHARED) is optional on a developer's
// machine but must be there where CI runs (CI=true): a missing file then fails
// the test instead of skipping it, so a misconfigured CI cannot pass by
// running nothing.
inline bool shared_data_required() {
  const char* ci = std::getenv("CI");
  return ci != nullptr && std::string(ci) == "true";
}

inline std::string missing_shared_message(const std::string& what) {
  return "shared data not found (" + what +
         "); set THINKEYS_SHARED or place ../shared beside the repo" +
         (shared_data_required() ? " (CI=true: the data must be present)" : "");
}

// Ends the current test (or SetUp) because `what` is missing: a failure under
// CI=true, a skip otherwise. A macro because only a macro can return from the
// caller the way GTEST_SKIP / GTEST_FAIL must.
#define THINKEYS_MISSING_SHARED(what)                                 \
  do {                                                                \
    if (::thinkeys::test::shared_data_required())                     \
      GTEST_FAIL() << ::thinkeys::test::missing_shared_message(what); \
    else                                                              \
      GTEST_SKIP() << ::thinkeys::test::missing_shared_message(what); \
  } while (false)

#define THINKEYS_REQUIRE_SHARED(var, rel)              \
  auto var##_opt = ::thinkeys::test::shared_file(rel); \
  if (!var##_opt) THINKEYS_MISSING_SHARED(rel);        \
  const std::filesystem::path var = *var##_opt

class TempDir {
 public:
  TempDir() {
    std::random_device rd;
    path_ = std::filesystem::temp_directory_path() /
            ("thinkeys-test-" + std::to_string(rd()) + std::to_string(rd()));
    std::filesystem::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::filesystem::path& path() const { return path_; }
  std::filesystem::path operator/(const std::string& name) const { return path_ / name; }

 private:
  std::filesystem::path path_;
};

inline void write_bytes(const std::filesystem::path& p, const std::string& bytes) {
  std::ofstream out(p, std::ios::binary);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

inline std::string read_bytes(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

#ifdef THINKEYS_CLI_PATH
struct CliResult {
  int status = -1;  // exit code; -1 if the process did not exit (signal, timeout kill)
  bool signaled = false;
  std::string out, err;
};

// Runs `thinkeys ARGS` with no standard input under timeout(1), the way a
// user's shell would, and collects its exit status and both streams.
inline CliResult run_cli(const std::string& args, int timeout_seconds = 120) {
  TempDir io;
  const std::string cmd = "timeout " + std::to_string(timeout_seconds) + " " +
                          std::string(THINKEYS_CLI_PATH) + " " + args + " >" +
                          (io / "out").string() + " 2>" + (io / "err").string() + " </dev/null";
  const int raw = std::system(cmd.c_str());
  CliResult r;
  r.signaled = WIFSIGNALED(raw);
  r.status = WIFEXITED(raw) ? WEXITSTATUS(raw) : -1;
  r.out = read_bytes(io / "out");
  r.err = read_bytes(io / "err");
  return r;
}

// Bad input's contract: exit status 1 and one line on stderr, "error: ..."
// naming `needle`.
inline void expect_clean_failure(const CliResult& r, const std::string& needle) {
  EXPECT_FALSE(r.signaled);
  EXPECT_EQ(r.status, 1) << "stderr: " << r.err;
  EXPECT_EQ(r.err.rfind("error: ", 0), 0u) << "stderr: " << r.err;
  ASSERT_FALSE(r.err.empty());
  EXPECT_EQ(r.err.find('\n'), r.err.size() - 1) << "more than one line: " << r.err;
  EXPECT_NE(r.err.find(needle), std::string::npos) << "stderr lacks '" << needle << "': " << r.err;
}
#endif

// n tokens drawn uniformly from [0, vocab), reproducibly from `seed`.
inline std::vector<int32_t> random_tokens(int n, int vocab, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<int32_t> t(static_cast<size_t>(n));
  for (auto& x : t) x = static_cast<int32_t>(rng() % static_cast<uint32_t>(vocab));
  return t;
}

// `n` words drawn from `words` reproducibly from `seed`, each followed by a
// space or, every twelfth, by ".\n": text for the CLI to tokenize and train on.
inline std::string random_sentences(uint32_t seed, const std::vector<std::string>& words, int n) {
  std::mt19937 rng(seed);
  std::string s;
  for (int i = 0; i < n; ++i) s += words[rng() % words.size()] + (i % 12 == 11 ? ".\n" : " ");
  return s;
}

}  // namespace thinkeys::test
