#pragma once
// Tensors packed one after another into mappings of whole transparent huge
// pages. A decode step streams every weight once, and the kernel backs only
// whole, aligned 2 MiB of an advised mapping with huge pages: a matrix in a
// mapping of its own size kept its last partial 2 MiB on 4 KiB pages (a
// third of a 3 MiB matrix), and one under 2 MiB none at all. On the Intel VM
// that cost int8 decode steps at mha 1K 5-9% (docs/results/decode.md);
// rounding each matrix's mapping up instead would add up to 2 MiB of
// resident memory per matrix.
#include <cstddef>
#include <memory>
#include <mutex>

#include "util/huge_page_memory.h"

namespace thinkeys {

class HugePageArena {
 public:
  static constexpr std::size_t kAlign = 64;
  static constexpr std::size_t kChunkBytes = std::size_t{32} << 20;

  struct Allocation {
    std::shared_ptr<HugePageMemory> chunk;  // keeps the bytes mapped
    std::byte* data = nullptr;
  };

  // `bytes` bytes at a kAlign boundary: in the chunk of the last allocation
  // when they fit there, else at the start of a new chunk of kChunkBytes or
  // `bytes` rounded up to whole huge pages, whichever is larger. A chunk is
  // unmapped when the last allocation in it is released, and is not reused
  // after that.
  Allocation allocate(std::size_t bytes);

 private:
  std::mutex mutex_;
  std::weak_ptr<HugePageMemory> chunk_;
  std::size_t used_ = 0;
};

// The arena that model weights are copied into (model/weights.h).
HugePageArena& weight_arena();

}  // namespace thinkeys
