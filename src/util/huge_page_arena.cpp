#include "util/huge_page_arena.h"

#include <algorithm>

namespace thinkeys {

HugePageArena::Allocation HugePageArena::allocate(std::size_t bytes) {
  constexpr std::size_t page = HugePageMemory::kHugePage;
  std::lock_guard lock(mutex_);
  std::shared_ptr<HugePageMemory> chunk = chunk_.lock();
  const std::size_t offset = (used_ + kAlign - 1) / kAlign * kAlign;
  if (chunk && offset <= chunk->bytes() && bytes <= chunk->bytes() - offset) {
    used_ = offset + bytes;
    return {chunk, chunk->data() + offset};
  }
  const std::size_t whole = (std::max<std::size_t>(bytes, 1) + page - 1) / page * page;
  chunk = std::make_shared<HugePageMemory>(std::max(kChunkBytes, whole));
  chunk_ = chunk;
  used_ = bytes;
  return {chunk, chunk->data()};
}

HugePageArena& weight_arena() {
  static HugePageArena arena;
  return arena;
}

}  // namespace thinkeys
