#pragma once
// Where one head's cached rows of one sequence live: token t is in block
// t / block_tokens, at slot t % block_tokens of the head's part of the block,
// which sits at a fixed offset in every block.
#include <array>
#include <cstddef>
#include <vector>

#include "format/cache_dtype.h"

namespace thinkeys {

// Bytes of one channel's slots in a part stored by channel.
inline std::size_t channel_stride(const RowFormat& f, int block_tokens) {
  const auto bt = static_cast<std::size_t>(block_tokens);
  return f.dtype == CacheDType::Int4 ? (bt + 1) / 2 : f.data_bytes() / f.width * bt;
}

struct PagedRows {
  const std::byte* const* blocks = nullptr;  // the layer's rows in each block, in token order
  std::size_t offset = 0;                    // of this head's rows among them
  RowFormat format;
  int block_tokens = 0;
  // Stored channel by channel: channel j of the part's token slot i is
  // element j * block_tokens + i, and a quantized row's group scales follow
  // all the elements, scale g of slot i at scale g * block_tokens + i. An
  // int4 channel is packed as an int4 row is: slot i < block_tokens / 2 in
  // the low nibble of its byte i, slot block_tokens / 2 + i in the high
  // nibble (block_tokens even). Keys are (CacheSpec::keys_by_channel), so
  // scores come out a vector of tokens at a time without the horizontal sums
  // of a dot product per token (docs/results/decode.md). Otherwise token by
  // token: slot i is the row at byte format.bytes() * i.
  bool by_channel = false;

  // The head's part of the block holding `token`.
  const std::byte* part(int token) const { return blocks[token / block_tokens] + offset; }
  // A whole stored row; token-by-token layout only.
  const std::byte* row(int token) const {
    return part(token) + format.bytes() * static_cast<std::size_t>(token % block_tokens);
  }
  // Bytes of one stored value; 0 for int4 (half a byte).
  std::size_t element_bytes() const { return format.data_bytes() / format.width; }
  // Bytes of one channel's slots, stored by channel.
  std::size_t channel_bytes() const { return channel_stride(format, block_tokens); }
  // Bytes of all channels' slots: where the scales start, stored by channel.
  std::size_t channels_bytes() const { return channel_bytes() * format.width; }
};

// Between a row as encode_row writes it and slot `slot` of a part stored by
// channel.
void scatter_row(const RowFormat& f, int block_tokens, int slot, const std::byte* row,
                 std::byte* part);
void gather_row(const RowFormat& f, int block_tokens, int slot, const std::byte* part,
                std::byte* row);
// Token `token`'s row as encode_row wrote it (format.bytes()), either layout.
void stored_row(const PagedRows& rows, int token, std::byte* dst);
// Token `token`'s row as floats (decoded as decode_row does), either layout.
void read_row(const PagedRows& rows, int token, float* dst);

// Calls fn with a buffer of `bytes` bytes: on the stack up to 4 KiB (a
// 1024-wide f32 row), so writing and reading rows does not allocate.
template <class Fn>
void with_row_buffer(std::size_t bytes, Fn&& fn) {
  if (bytes <= 4096) {
    alignas(64) std::array<std::byte, 4096> row;
    return fn(row.data());
  }
  std::vector<std::byte> row(bytes);
  fn(row.data());
}

}  // namespace thinkeys
