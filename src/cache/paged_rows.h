#pragma once
// Where one head's cached rows of one sequence live: token t is row
// t % block_tokens of block t / block_tokens, at a fixed offset in each block.
#include <cstddef>

#include "cache/cache_dtype.h"

namespace thinkeys {

struct PagedRows {
  const std::byte* const* blocks = nullptr;  // the layer's rows in each block, in token order
  std::size_t offset = 0;                    // of this head's rows among them
  RowFormat format;
  int block_tokens = 0;

  const std::byte* row(int token) const {
    return blocks[token / block_tokens] + offset +
           format.bytes() * static_cast<std::size_t>(token % block_tokens);
  }
};

}  // namespace thinkeys
