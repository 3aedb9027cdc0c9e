#pragma once
// How much memory a new allocation can get without pushing the machine into
// swap or the OOM killer.
#include <cstddef>

namespace thinkeys {

// MemAvailable from /proc/meminfo in bytes; 0 where it cannot be read.
std::size_t mem_available_bytes();

}  // namespace thinkeys
