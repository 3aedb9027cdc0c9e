#include "format/paged_rows.h"

#include <array>
#include <cstdint>
#include <cstring>
#include <vector>

#include "format/row_codec.h"

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

// Where each stored piece of slot `slot`'s row sits in the row (encode_row's
// form) and in a part stored by channel: nibbles(row_at, part_at) for each
// int4 level, bytes(row_offset, part_offset, n) for each wider element and
// each scale. The int4 slots of a channel share bytes with another slot, so
// they move one nibble at a time.
template <class Nibbles, class Bytes>
void each_place(const RowFormat& f, int block_tokens, int slot, Nibbles&& nibbles, Bytes&& bytes) {
  const std::size_t bt = block_tokens, channel = channel_stride(f, block_tokens);
  if (f.dtype == CacheDType::Int4) {
    for (int j = 0; j < f.width; ++j) {
      Nibble at = nibble(slot, block_tokens);
      at.byte += channel * j;
      nibbles(nibble(j, f.width), at);
    }
  } else {
    const std::size_t es = f.data_bytes() / f.width;
    for (int j = 0; j < f.width; ++j) bytes(es * j, es * (j * bt + slot), es);
  }
  for (int g = 0; g < f.groups(); ++g)
    bytes(f.scale_offset() + RowFormat::kScaleBytes * g,
          channel * f.width + RowFormat::kScaleBytes * (g * bt + slot), RowFormat::kScaleBytes);
}

}  // namespace

void scatter_row(const RowFormat& f, int block_tokens, int slot, const std::byte* row,
                 std::byte* part) {
  each_place(
      f, block_tokens, slot,
      [&](Nibble in_row, Nibble in_part) { set_nibble(part, in_part, get_nibble(row, in_row)); },
      [&](std::size_t in_row, std::size_t in_part, std::size_t n) {
        std::memcpy(part + in_part, row + in_row, n);
      });
}

void gather_row(const RowFormat& f, int block_tokens, int slot, const std::byte* part,
                std::byte* row) {
  // An odd int4 width's spare nibble, as encode_row leaves it.
  if (f.dtype == CacheDType::Int4) std::memset(row, 0x88, f.data_bytes());
  each_place(
      f, block_tokens, slot,
      [&](Nibble in_row, Nibble in_part) { set_nibble(row, in_row, get_nibble(part, in_part)); },
      [&](std::size_t in_row, std::size_t in_part, std::size_t n) {
        std::memcpy(row + in_row, part + in_part, n);
      });
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
