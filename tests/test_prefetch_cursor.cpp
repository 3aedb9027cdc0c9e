// The decode kernel's prefetch cursor: after the reader has consumed X bytes,
// exactly the lines holding stream bytes [ahead, ahead + X) have been
// requested (with start(true): [0, ahead + X)), in reading order, each once
// except where two ranges share a line. Checked against a plain byte-by-byte
// model of the same stream, whether the reader moves it on with advance or,
// inside the current range, with advance_within.
#include <gtest/gtest.h>

#include <cstddef>
#include <cstdint>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "kernels/prefetch_cursor.h"

namespace thinkeys {
namespace {

struct Record {
  std::vector<std::uintptr_t>* lines;
  void operator()(std::uintptr_t line) const { lines->push_back(line); }
};

struct Span {
  std::size_t offset, bytes;  // inside the arena
};

// Line addresses of stream bytes [from, to), in order, without repeats.
std::vector<std::uintptr_t> model_lines(const std::byte* arena, const std::vector<Span>& spans,
                                        std::size_t from, std::size_t to) {
  std::vector<std::uintptr_t> out;
  std::size_t k = 0;
  for (const Span& s : spans)
    for (std::size_t b = 0; b < s.bytes; ++b, ++k) {
      if (k < from || k >= to) continue;
      const auto line =
          reinterpret_cast<std::uintptr_t>(arena + s.offset + b) & ~std::uintptr_t{63};
      if (out.empty() || out.back() != line) out.push_back(line);
    }
  return out;
}

std::vector<std::uintptr_t> without_repeats(const std::vector<std::uintptr_t>& v) {
  std::vector<std::uintptr_t> out;
  for (auto x : v)
    if (out.empty() || out.back() != x) out.push_back(x);
  return out;
}

void check_stream(const std::vector<Span>& spans, std::size_t ahead, bool first,
                  std::uint32_t seed) {
  alignas(64) static std::byte arena[1 << 16];
  std::vector<std::uintptr_t> lines;
  PrefetchCursor<Record> cursor(ahead, Record{&lines});
  std::size_t total = 0;
  for (const Span& s : spans) {
    cursor.add(arena + s.offset, s.bytes);
    total += s.bytes;
  }
  cursor.start(first);
  const std::size_t from = first ? 0 : ahead;
  EXPECT_EQ(without_repeats(lines), model_lines(arena, spans, from, std::min(total, ahead)))
      << "after start";

  std::mt19937 rng(seed);
  std::uniform_int_distribution<int> step(0, 300);
  std::size_t consumed = 0;
  while (consumed < total) {
    const std::size_t n = step(rng);
    // Within the current range, the inline path must request what advance does.
    if (n <= cursor.bytes_in_range() && rng() % 2)
      cursor.advance_within(n);
    else
      cursor.advance(n);
    consumed += n;
    const auto want = model_lines(arena, spans, from, std::min(total, ahead + consumed));
    ASSERT_EQ(without_repeats(lines), want) << "after " << consumed << " bytes";
    // A line is asked for twice only where two ranges share it.
    ASSERT_LE(lines.size(), want.size() + spans.size());
  }
}

TEST(PrefetchCursor, RequestsEveryLineOnceAheadOfTheReader) {
  // Unaligned ranges, a range inside one line, one that starts in the line
  // where the previous ends, and gaps between them.
  const std::vector<Span> spans = {{10, 1000}, {5000, 30}, {5030, 700}, {8192, 4096}, {20001, 333}};
  for (std::size_t ahead : {0, 64, 100, 1040, 3072})
    for (bool first : {false, true}) check_stream(spans, ahead, first, 7 + ahead);
}

TEST(PrefetchCursor, StopsAtTheEndAndIgnoresRangesPastItsCapacity) {
  // The distance reaches past the last range: nothing outside the ranges is
  // requested, and advancing past the end is harmless.
  check_stream({{64, 256}, {1024, 128}}, 3072, true, 1);
  constexpr int kMax = PrefetchCursor<Record>::kMaxRanges;
  alignas(64) static std::byte arena[64 * 64];
  // Separate ranges (a line apart): those past the capacity are dropped.
  std::vector<std::uintptr_t> lines;
  PrefetchCursor<Record> cursor(0, Record{&lines});
  for (int i = 0; i < kMax + 2; ++i) cursor.add(arena + 128 * i, 64);
  cursor.start(false);
  cursor.advance(64 * 64);
  ASSERT_EQ(lines.size(), static_cast<std::size_t>(kMax));
  for (int i = 0; i < kMax; ++i)
    EXPECT_EQ(lines[i], reinterpret_cast<std::uintptr_t>(arena + 128 * i));
  cursor.advance(1000);
  EXPECT_EQ(lines.size(), static_cast<std::size_t>(kMax));
  // Adjacent ranges extend each other, so any number of them fits.
  std::vector<std::uintptr_t> joined;
  PrefetchCursor<Record> contiguous(0, Record{&joined});
  for (int i = 0; i < kMax + 2; ++i) contiguous.add(arena + 64 * i, 64);
  contiguous.start(false);
  contiguous.advance(64 * (kMax + 2));
  ASSERT_EQ(joined.size(), static_cast<std::size_t>(kMax + 2));
  for (int i = 0; i < kMax + 2; ++i)
    EXPECT_EQ(joined[i], reinterpret_cast<std::uintptr_t>(arena + 64 * i));
}

// The CPUID vendor string and family are the ones Linux reports as
// vendor_id and cpu family.
TEST(PrefetchTuning, VendorAndFamilyAreTheOnesLinuxReports) {
  std::ifstream info("/proc/cpuinfo");
  std::string line, vendor;
  int family = -1;
  while ((vendor.empty() || family < 0) && std::getline(info, line)) {
    if (line.rfind("vendor_id", 0) == 0) vendor = line.substr(line.find(':') + 2);
    if (line.rfind("cpu family", 0) == 0) family = std::stoi(line.substr(line.find(':') + 2));
  }
  if (vendor.empty() || family < 0)
    GTEST_SKIP() << "no vendor_id or cpu family in /proc/cpuinfo on this machine";
  EXPECT_EQ(cpu_vendor(), vendor);
  EXPECT_EQ(cpu_family(), family);
  const PrefetchTuning expected = prefetch_tuning_for(vendor, family);
  EXPECT_EQ(prefetch_tuning().int8_bytes, expected.int8_bytes);
  EXPECT_EQ(prefetch_tuning().int8_into_l1, expected.int8_into_l1);
}

// Which CPUs request int8 weight lines into L1: only Zen 5 and later, where
// that was measured faster; Zen 4 (family 25) and Intel into L2.
TEST(PrefetchTuning, Int8LinesGoIntoL1OnlyFromZen5On) {
  EXPECT_FALSE(prefetch_tuning_for("AuthenticAMD", 25).int8_into_l1);
  EXPECT_TRUE(prefetch_tuning_for("AuthenticAMD", 26).int8_into_l1);
  EXPECT_FALSE(prefetch_tuning_for("GenuineIntel", 6).int8_into_l1);
  EXPECT_EQ(prefetch_tuning_for("GenuineIntel", 6).int8_bytes, 3072u);
  EXPECT_EQ(prefetch_tuning_for("AuthenticAMD", 26).int8_bytes, 6144u);
}

}  // namespace
}  // namespace thinkeys
