#include "cache/paged_rows.h"

#include <array>
#include <cstring>
#include <vector>

#include "kernels/quantize.h"

namespace thinkeys {

void scatter_row(const RowFormat& f, int block_tokens, int slot, const std::byte* row,
                 std::byte* part) {
  const std::size_t es = f.data_bytes() / f.width, bt = block_tokens;
  for (int j = 0; j < f.width; ++j) std::memcpy(part + es * (j * bt + slot), row + es * j, es);
  std::byte* scales = part + f.data_bytes() * bt;
  for (int g = 0; g < f.groups(); ++g)
    std::memcpy(scales + RowFormat::kScaleBytes * (g * bt + slot),
                row + f.scale_offset() + RowFormat::kScaleBytes * g, RowFormat::kScaleBytes);
}

void gather_row(const RowFormat& f, int block_tokens, int slot, const std::byte* part,
                std::byte* row) {
  const std::size_t es = f.data_bytes() / f.width, bt = block_tokens;
  for (int j = 0; j < f.width; ++j) std::memcpy(row + es * j, part + es * (j * bt + slot), es);
  const std::byte* scales = part + f.data_bytes() * bt;
  for (int g = 0; g < f.groups(); ++g)
    std::memcpy(row + f.scale_offset() + RowFormat::kScaleBytes * g,
                scales + RowFormat::kScaleBytes * (g * bt + slot), RowFormat::kScaleBytes);
}

void stored_row(const PagedRows& rows, int token, std::byte* dst) {
  if (!rows.by_channel) {
    std::memcpy(dst, rows.row(token), rows.format.bytes());
    return;
  }
  gather_row(rows.format, rows.block_tokens, token % rows.block_tokens, rows.part(token), dst);
}

void read_row(const PagedRows& rows, int token, float* dst) {
  if (!rows.by_channel) return decode_row(rows.format, rows.row(token), dst);
  with_row_buffer(rows.format.bytes(), [&](std::byte* row) {
    stored_row(rows, token, row);
    decode_row(rows.format, row, dst);
  });
}

}  // namespace thinkeys
