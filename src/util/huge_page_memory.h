#pragma once
// Anonymous memory that starts on a 2 MiB boundary and is advised for
// transparent huge pages, so that every whole 2 MiB of it can be one page.
// Streaming reads over 4 KiB pages cost a TLB miss and a page walk every 4 KiB:
// on the Intel VM, where THP is "madvise" (only advised memory gets huge
// pages), a decode GEMV over f32 weights read 18-21 GB/s on 4 KiB pages and
// 27 GB/s on huge pages, against a 28-29 GB/s probe.
#include <cstddef>

namespace thinkeys {

class HugePageMemory {
 public:
  static constexpr std::size_t kHugePage = std::size_t{2} << 20;

  HugePageMemory() = default;
  // Maps `bytes` rounded up to whole pages (throws Error when it cannot);
  // pages are backed when first touched. huge_pages = false maps ordinary
  // pages (for A/B runs); where the kernel has no huge pages to give, the
  // memory works the same on ordinary ones.
  explicit HugePageMemory(std::size_t bytes, bool huge_pages = true);
  ~HugePageMemory();
  HugePageMemory(HugePageMemory&& other) noexcept;
  HugePageMemory& operator=(HugePageMemory&& other) noexcept;
  HugePageMemory(const HugePageMemory&) = delete;
  HugePageMemory& operator=(const HugePageMemory&) = delete;

  std::byte* data() const { return data_; }
  // Bytes mapped: the request rounded up to whole pages.
  std::size_t bytes() const { return bytes_; }
  // Whether the kernel accepted the huge-page advice.
  bool advised() const { return advised_; }

 private:
  std::byte* data_ = nullptr;
  std::size_t bytes_ = 0;
  bool advised_ = false;
};

}  // namespace thinkeys
