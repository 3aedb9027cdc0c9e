#include "cache/paged_rows.h"

#include <array>
#include <cstdint>
#include <cstring>
#include <vector>

#include "kernels/quantize.h"

namespace thinkeys {

namespace {

// Where element k of n int4 levels packed as a row is (cache_dtype.h): the
// low nibble of byte k for the first ceil(n / 2), else the high nibble of
// byte k - ceil(n / 2).
struct Nibble {
  std::size_t byte;
  int shift;
};
Nibble nibble(int k, int n) {
  const int half = (n + 1) / 2;
  return k < half ? Nibble{static_cast<std::size_t>(k), 0}
                  : Nibble{static_cast<std::size_t>(k - half), 4};
}
std::uint8_t get_nibble(const std::byte* p, Nibble at) {
  return (std::to_integer<std::uint8_t>(p[at.byte]) >> at.shift) & 15;
}
void set_nibble(std::byte* p, Nibble at, std::uint8_t level) {
  const auto keep = std::to_integer<std::uint8_t>(p[at.byte]) & (0xF0 >> at.shift);
  p[at.byte] = std::byte(keep | (level << at.shift));
}

}  // namespace

std::size_t PagedRows::channel_bytes() const {
  return format.dtype == CacheDType::Int4 ? static_cast<std::size_t>(block_tokens + 1) / 2
                                          : element_bytes() * block_tokens;
}

// The int4 slots of a channel are the other nibbles of bytes another slot
// shares, so they are written one nibble at a time.
void scatter_row(const RowFormat& f, int block_tokens, int slot, const std::byte* row,
                 std::byte* part) {
  const std::size_t bt = block_tokens;
  std::size_t channel = 0;
  if (f.dtype == CacheDType::Int4) {
    channel = (bt + 1) / 2;
    for (int j = 0; j < f.width; ++j)
      set_nibble(part + channel * j, nibble(slot, block_tokens),
                 get_nibble(row, nibble(j, f.width)));
  } else {
    const std::size_t es = f.data_bytes() / f.width;
    channel = es * bt;
    for (int j = 0; j < f.width; ++j) std::memcpy(part + es * (j * bt + slot), row + es * j, es);
  }
  std::byte* scales = part + channel * f.width;
  for (int g = 0; g < f.groups(); ++g)
    std::memcpy(scales + RowFormat::kScaleBytes * (g * bt + slot),
                row + f.scale_offset() + RowFormat::kScaleBytes * g, RowFormat::kScaleBytes);
}

void gather_row(const RowFormat& f, int block_tokens, int slot, const std::byte* part,
                std::byte* row) {
  const std::size_t bt = block_tokens;
  std::size_t channel = 0;
  if (f.dtype == CacheDType::Int4) {
    channel = (bt + 1) / 2;
    std::memset(row, 0x88, f.data_bytes());  // an odd width's spare nibble, as encode_row
    for (int j = 0; j < f.width; ++j)
      set_nibble(row, nibble(j, f.width),
                 get_nibble(part + channel * j, nibble(slot, block_tokens)));
  } else {
    const std::size_t es = f.data_bytes() / f.width;
    channel = es * bt;
    for (int j = 0; j < f.width; ++j) std::memcpy(row + es * j, part + es * (j * bt + slot), es);
  }
  const std::byte* scales = part + channel * f.width;
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
