#include "cache/block_pool.h"

#include <string>

#include "util/error.h"

namespace thinkeys {

std::size_t BlockPool::rounded_block_bytes(std::size_t block_bytes) {
  return (block_bytes + kAlignment - 1) / kAlignment * kAlignment;
}

std::size_t BlockPool::blocks_in(std::size_t budget_bytes, std::size_t block_bytes) {
  return budget_bytes / rounded_block_bytes(block_bytes);
}

BlockPool::BlockPool(std::size_t block_bytes, std::size_t budget_bytes, bool huge_pages) {
  if (block_bytes == 0) throw Error("cache block size must be positive");
  block_bytes_ = rounded_block_bytes(block_bytes);
  const std::size_t n = blocks_in(budget_bytes, block_bytes);
  if (n == 0)
    throw Error("cache budget of " + std::to_string(budget_bytes) +
                " bytes is smaller than one block (" + std::to_string(block_bytes_) + " bytes)");
  if (n > kMaxBlocks) throw Error("cache budget holds too many blocks");
  total_ = static_cast<int>(n);

  // Its own mapping instead of malloc so that the pool owns exactly the pages
  // it reports and starts on a huge-page boundary: a decode task reads one
  // head's short run from every block, so on 4 KiB pages almost every run
  // costs a TLB miss and a page walk. Pages are touched only when blocks are
  // written, so a generous budget costs address space, not memory.
  memory_ = HugePageMemory(capacity_bytes() + kTailSlack, huge_pages);

  free_.reserve(total_);
  for (int i = total_ - 1; i >= 0; --i) free_.push_back(i);  // hand out low ids first
  in_use_.assign(total_, 0);
}

void BlockPool::take(int n, std::vector<int>& out) {
  if (n < 0) throw Error("negative block request");
  out.reserve(out.size() + n);
  if (n > free_blocks())
    throw Error("KV cache pool exhausted: need " + std::to_string(n) + " more blocks of " +
                std::to_string(block_bytes_) + " bytes, " + std::to_string(free_blocks()) + " of " +
                std::to_string(total_) + " free");
  for (int i = 0; i < n; ++i) {
    const int b = free_.back();
    free_.pop_back();
    in_use_[b] = 1;
    out.push_back(b);
  }
}

void BlockPool::give(int block) {
  if (block < 0 || block >= total_ || !in_use_[block])
    throw Error("returning block " + std::to_string(block) + " that is not in use");
  in_use_[block] = 0;
  free_.push_back(block);
}

}  // namespace thinkeys
