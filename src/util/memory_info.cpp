#include "util/memory_info.h"

#include <fstream>
#include <string>

namespace thinkeys {

std::size_t mem_available_bytes() {
  std::ifstream in("/proc/meminfo");
  std::string key, unit;
  std::size_t kb = 0;
  while (in >> key >> kb >> unit)
    if (key == "MemAvailable:") return kb * 1024;
  return 0;
}

}  // namespace thinkeys
