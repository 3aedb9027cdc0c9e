#include "cache/paged_rows.h"

#include <cstdint>
#include <cstring>

#include "kernels/quantize.h"

namespace thinkeys {

void read_row(const PagedRows& rows, int token, float* dst) {
  if (!rows.by_channel) return decode_row(rows.format, rows.row(token), dst);
  const std::size_t es = rows.element_bytes();
  const std::byte* p = rows.part(token) + es * static_cast<std::size_t>(token % rows.block_tokens);
  const std::size_t channel_stride = es * static_cast<std::size_t>(rows.block_tokens);
  for (int j = 0; j < rows.format.width; ++j, p += channel_stride) {
    if (rows.format.dtype == CacheDType::F32) {
      std::memcpy(dst + j, p, sizeof(float));
      continue;
    }
    uint16_t h;
    std::memcpy(&h, p, sizeof(h));
    dst[j] = rows.format.dtype == CacheDType::F16 ? f16_to_f32(h) : bf16_to_f32(h);
  }
}

}  // namespace thinkeys
