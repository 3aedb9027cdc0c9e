#include "util/huge_page_memory.h"

#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>
#include <string>
#include <utility>

#include "util/error.h"

namespace thinkeys {

HugePageMemory::HugePageMemory(std::size_t bytes, bool huge_pages) {
  const std::size_t page = static_cast<std::size_t>(sysconf(_SC_PAGESIZE));
  bytes_ = (bytes + page - 1) / page * page;
  if (bytes_ == 0) return;
  // Over-map by one huge page, then trim both ends to the aligned range.
  const std::size_t over = bytes_ + kHugePage;
  void* p = mmap(nullptr, over, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) throw Error("cannot map " + std::to_string(bytes_) + " bytes of memory");
  const auto raw = reinterpret_cast<std::uintptr_t>(p);
  const std::uintptr_t start = (raw + kHugePage - 1) / kHugePage * kHugePage;
  if (start > raw) munmap(p, start - raw);
  if (raw + over > start + bytes_)
    munmap(reinterpret_cast<void*>(start + bytes_), raw + over - (start + bytes_));
  data_ = reinterpret_cast<std::byte*>(start);
#ifdef MADV_HUGEPAGE
  if (huge_pages) advised_ = madvise(data_, bytes_, MADV_HUGEPAGE) == 0;
#else
  (void)huge_pages;
#endif
}

HugePageMemory::~HugePageMemory() {
  if (data_) munmap(data_, bytes_);
}

HugePageMemory::HugePageMemory(HugePageMemory&& other) noexcept
    : data_(std::exchange(other.data_, nullptr)),
      bytes_(std::exchange(other.bytes_, 0)),
      advised_(std::exchange(other.advised_, false)) {}

HugePageMemory& HugePageMemory::operator=(HugePageMemory&& other) noexcept {
  if (this != &other) {
    if (data_) munmap(data_, bytes_);
    data_ = std::exchange(other.data_, nullptr);
    bytes_ = std::exchange(other.bytes_, 0);
    advised_ = std::exchange(other.advised_, false);
  }
  return *this;
}

}  // namespace thinkeys
