#pragma once
// Memory sizes as people write them: "24GiB", "80GB", "8x80GB", "512MiB",
// "1e9". Decimal units (kB, MB, GB, TB) are powers of 1000, binary ones
// (KiB, MiB, GiB, TiB) powers of 1024, as the SI and IEC define them.
#include <cstddef>
#include <string>

namespace thinkeys {

struct MemorySize {
  std::size_t bytes = 0;  // in total, over every device
  int devices = 1;        // "8x80GB": 8 devices of 80 GB
};

// Throws Error naming the text and the accepted forms on anything else.
MemorySize parse_memory_size(const std::string& text);

// "67.1 GB" (decimal) or "62.5 GiB" (binary), three significant digits.
std::string format_bytes(double bytes, bool decimal = false);

}  // namespace thinkeys
