#pragma once
// Paged KV cache for many sequences: one BlockPool with a byte budget and a
// block table per sequence. A block holds every layer's key and value rows
// for block_tokens tokens, but the pool's memory is laid out layer by layer
// (as vLLM's per-layer tensors): block b's rows of layer l sit in slot b of
// layer l's region, so a sequence's consecutive blocks of one layer are
// adjacent and decode attention, which reads one layer at a time, streams
// them. Key width may differ per layer (thin ranks), and keys and values each
// have their own dtype. Value heads are a whole multiple of key heads (GQA
// with latent keys shares one key head).
#include <cstddef>
#include <vector>

#include "cache/block_pool.h"
#include "cache/cache_footprint.h"
#include "format/cache_dtype.h"
#include "format/paged_rows.h"

namespace thinkeys {

class PagedKVCache {
 public:
  PagedKVCache(std::vector<CacheLayerShape> layers, const CacheSpec& spec);

  // Sequence ids are small integers, reused after remove_sequence.
  int add_sequence();
  void remove_sequence(int id);  // returns its blocks to the pool
  bool has_sequence(int id) const;
  int sequences() const;

  // Makes room for `tokens` tokens in total, taking whole blocks; throws
  // Error without taking any when the pool cannot supply them all.
  void reserve(int id, int tokens);
  int capacity(int id) const;  // tokens that fit in the blocks already taken
  int length(int id) const;
  void set_length(int id, int tokens);  // at most capacity(id)

  // Encode one token's row (f32 in, the layer's dtype stored); pos < capacity(id).
  void write_key(int id, int layer, int head, int pos, const float* row);
  void write_value(int id, int layer, int head, int pos, const float* row);
  // Rows of one head for the decode kernels; valid until the next reserve
  // or remove of this sequence.
  PagedRows keys(int id, int layer, int head) const;
  PagedRows values(int id, int layer, int head) const;
  // One stored row decoded to floats (as decode_row), whatever its layout.
  void read_key(int id, int layer, int head, int pos, float* row) const;
  void read_value(int id, int layer, int head, int pos, float* row) const;
  bool keys_by_channel(int layer) const;
  // Raw bytes of one layer's rows in the sequence's i-th block.
  std::byte* block_data(int id, int layer, int i);
  std::size_t layer_block_bytes(int layer) const {
    return footprint_.layers[layer].section_bytes();
  }
  // Copies every layer's rows of the sequence's block `from` over block `to`
  // (bulk loaders fill one block and replicate it).
  void copy_block(int id, int from, int to);

  const CacheSpec& spec() const { return spec_; }
  const std::vector<CacheLayerShape>& layers() const { return layers_; }
  const RowFormat& key_format(int layer) const { return footprint_.layers[layer].key_format; }
  const RowFormat& value_format(int layer) const { return footprint_.layers[layer].value_format; }
  // The block layout, as a capacity plan computes it without a cache.
  const CacheFootprint& footprint() const { return footprint_; }
  int block_tokens() const { return spec_.block_tokens; }

  // Accounting. payload: bytes of rows and scales one token needs (docs/design.md
  // section 7); per_token: what the pool actually spends per token, block
  // alignment included; used/capacity: whole blocks in and available to use.
  std::size_t payload_bytes_per_token() const;
  double bytes_per_token() const;
  std::size_t block_bytes() const { return pool_.block_bytes(); }
  std::size_t used_bytes() const { return pool_.used_bytes(); }
  std::size_t capacity_bytes() const { return pool_.capacity_bytes(); }
  std::size_t allocated_bytes() const { return pool_.allocated_bytes(); }
  bool huge_pages() const { return pool_.huge_pages(); }
  int total_blocks() const { return pool_.total_blocks(); }
  int free_blocks() const { return pool_.free_blocks(); }
  int blocks_of(int id) const;

 private:
  struct Sequence {
    bool live = false;
    int length = 0;
    std::vector<int> blocks;
    std::vector<std::vector<const std::byte*>> addresses;  // per layer, per block
  };
  const Sequence& seq(int id) const;
  Sequence& seq(int id);
  // The part at `offset` (a head's rows) of the block holding pos.
  std::byte* part_address(int id, int layer, std::size_t offset, int pos);
  void check_layer(int layer) const;
  void check_head(int layer, int head, bool key) const;
  std::byte* section(int layer, int block) const;     // a block's rows of one layer
  std::size_t key_offset(int layer, int head) const;  // of the head's rows in a section
  std::size_t value_offset(int layer, int head) const;

  std::vector<CacheLayerShape> layers_;
  CacheSpec spec_;
  CacheFootprint footprint_;  // formats, strides and bytes per block
  BlockPool pool_;
  std::vector<std::byte*> regions_;  // per layer: its slot for block 0
  std::vector<Sequence> seqs_;
};

}  // namespace thinkeys
