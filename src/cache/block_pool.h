#pragma once
// A fixed budget of equally sized cache blocks carved from one aligned
// allocation. Blocks are handed out and returned by id; the pool never grows,
// so running out is an error the caller sees before anything is written.
#include <cstddef>
#include <vector>

#include "util/huge_page_memory.h"

namespace thinkeys {

class BlockPool {
 public:
  // Rows are read with whole-vector loads that may run past a row's end, so
  // the allocation carries this much slack after the last block.
  static constexpr std::size_t kAlignment = 64;
  static constexpr std::size_t kTailSlack = 128;
  // Block ids are ints; a budget of more blocks than this is refused.
  static constexpr std::size_t kMaxBlocks = std::size_t{1} << 30;

  // block_bytes is rounded up to kAlignment; the pool holds
  // budget_bytes / block_bytes blocks (at least one, or it throws).
  // huge_pages asks the kernel for transparent huge pages (madvise); where
  // it has none to give, the pool still works on ordinary pages.
  BlockPool(std::size_t block_bytes, std::size_t budget_bytes, bool huge_pages = true);

  // The block size and block count the constructor settles on, for planning
  // without allocating (cache/cache_footprint.h). blocks_in may be 0, where
  // the constructor throws.
  static std::size_t rounded_block_bytes(std::size_t block_bytes);
  static std::size_t blocks_in(std::size_t budget_bytes, std::size_t block_bytes);

  std::size_t block_bytes() const { return block_bytes_; }
  int total_blocks() const { return total_; }
  int free_blocks() const { return static_cast<int>(free_.size()); }
  int used_blocks() const { return total_ - free_blocks(); }
  std::size_t capacity_bytes() const { return block_bytes_ * total_; }
  std::size_t used_bytes() const { return block_bytes_ * used_blocks(); }
  // Bytes of the pool's mapping: capacity and slack rounded up to whole pages.
  std::size_t allocated_bytes() const { return memory_.bytes(); }
  bool huge_pages() const { return memory_.advised(); }

  // Appends n block ids to `out`, or none: throws Error (leaving the pool and
  // `out` unchanged) when fewer than n are free.
  void take(int n, std::vector<int>& out);
  void give(int block);

  std::byte* data(int block) { return memory_.data() + block_bytes_ * block; }
  const std::byte* data(int block) const { return memory_.data() + block_bytes_ * block; }

 private:
  std::size_t block_bytes_;
  int total_;
  HugePageMemory memory_;
  std::vector<int> free_;     // stack of free ids
  std::vector<char> in_use_;  // catches double returns
};

}  // namespace thinkeys
