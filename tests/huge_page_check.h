#pragma once
// Whether bytes [p, p + n) lie in one mapping that the kernel can back with
// huge pages throughout: advised for them (VmFlags "hg" in /proc/self/smaps)
// and starting and ending on 2 MiB boundaries. nullopt where smaps cannot be
// read (not Linux).
#include <cstddef>
#include <cstdint>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>

namespace thinkeys {

inline std::optional<bool> on_whole_huge_pages(const void* p, std::size_t n) {
  std::ifstream smaps("/proc/self/smaps");
  if (!smaps) return std::nullopt;
  const auto first = reinterpret_cast<std::uintptr_t>(p), last = first + n;
  constexpr std::uintptr_t kHuge = std::uintptr_t{2} << 20;
  std::string line;
  bool inside = false;
  std::uintptr_t start = 0, end = 0;
  while (std::getline(smaps, line)) {
    std::uintptr_t a = 0, b = 0;
    char dash = 0;
    std::istringstream head(line);
    if (head >> std::hex >> a >> dash >> b && dash == '-' && line.find(':') > line.find(' ')) {
      inside = a <= first && last <= b;
      start = a;
      end = b;
      continue;
    }
    if (inside && line.rfind("VmFlags:", 0) == 0)
      return line.find(" hg") != std::string::npos && start % kHuge == 0 && end % kHuge == 0;
  }
  return false;
}

}  // namespace thinkeys
