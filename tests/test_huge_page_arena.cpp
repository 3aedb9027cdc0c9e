// The weight arena (util/huge_page_arena.h): allocations are aligned,
// disjoint and packed one after another into mappings of whole huge pages;
// a chunk that cannot hold the next allocation is left for a new one; a
// chunk is unmapped with its last allocation.
#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <memory>
#include <vector>

#include "huge_page_check.h"
#include "util/huge_page_arena.h"

namespace thinkeys {
namespace {

constexpr std::size_t kHuge = HugePageMemory::kHugePage;

std::uintptr_t address(const std::byte* p) { return reinterpret_cast<std::uintptr_t>(p); }

TEST(HugePageArena, PacksAlignedAllocationsIntoWholeHugePages) {
  HugePageArena arena;
  const std::vector<std::size_t> sizes = {1, 100, 64, 3 << 20, 1800000, 7};
  std::vector<HugePageArena::Allocation> kept;
  for (std::size_t bytes : sizes) {
    HugePageArena::Allocation a = arena.allocate(bytes);
    ASSERT_NE(a.data, nullptr);
    EXPECT_EQ(address(a.data) % HugePageArena::kAlign, 0u);
    // Inside its chunk, which is whole huge pages from a huge-page boundary.
    EXPECT_EQ(address(a.chunk->data()) % kHuge, 0u);
    EXPECT_EQ(a.chunk->bytes() % kHuge, 0u);
    EXPECT_GE(a.data, a.chunk->data());
    EXPECT_LE(address(a.data) + bytes, address(a.chunk->data()) + a.chunk->bytes());
    std::memset(a.data, static_cast<int>(kept.size() + 1), bytes);
    if (const auto whole = on_whole_huge_pages(a.data, bytes); whole && a.chunk->advised())
      EXPECT_TRUE(*whole) << bytes;
    kept.push_back(a);
  }
  // All in one chunk, each right after the last (rounded up to kAlign), and
  // none overwrote another.
  std::uintptr_t next = address(kept[0].data);
  for (std::size_t i = 0; i < kept.size(); ++i) {
    EXPECT_EQ(kept[i].chunk, kept[0].chunk);
    EXPECT_EQ(address(kept[i].data), next);
    next = (next + sizes[i] + HugePageArena::kAlign - 1) / HugePageArena::kAlign *
           HugePageArena::kAlign;
    for (std::size_t b = 0; b < sizes[i]; b += 4096)
      EXPECT_EQ(static_cast<int>(kept[i].data[b]), static_cast<int>(i + 1));
  }
}

// The check above tells ordinary memory apart.
TEST(HugePageArena, HeapMemoryIsNotOnWholeHugePages) {
  std::vector<char> heap(1 << 20, 1);
  const auto whole = on_whole_huge_pages(heap.data(), heap.size());
  if (!whole) GTEST_SKIP() << "no /proc/self/smaps here";
  EXPECT_FALSE(*whole);
}

TEST(HugePageArena, LargeAndOverflowingAllocationsStartNewChunks) {
  HugePageArena arena;
  const std::size_t big = HugePageArena::kChunkBytes + 5;
  HugePageArena::Allocation a = arena.allocate(big);
  EXPECT_EQ(a.data, a.chunk->data());
  EXPECT_EQ(a.chunk->bytes(), (big + kHuge - 1) / kHuge * kHuge);
  // The rest of that chunk is used, then a request that does not fit moves on.
  HugePageArena::Allocation b = arena.allocate(1000);
  EXPECT_EQ(b.chunk, a.chunk);
  HugePageArena::Allocation c = arena.allocate(kHuge);
  EXPECT_NE(c.chunk, a.chunk);
  EXPECT_EQ(c.data, c.chunk->data());
  EXPECT_EQ(c.chunk->bytes(), HugePageArena::kChunkBytes);
}

TEST(HugePageArena, AChunkIsUnmappedWithItsLastAllocation) {
  HugePageArena arena;
  std::weak_ptr<HugePageMemory> chunk;
  {
    HugePageArena::Allocation a = arena.allocate(4096);
    HugePageArena::Allocation b = arena.allocate(4096);
    chunk = a.chunk;
    a = {};
    EXPECT_FALSE(chunk.expired());  // b still lives there
  }
  EXPECT_TRUE(chunk.expired());
  // The next allocation maps a fresh chunk rather than reusing freed bytes.
  HugePageArena::Allocation c = arena.allocate(64);
  EXPECT_EQ(c.data, c.chunk->data());
}

}  // namespace
}  // namespace thinkeys
