#include "cache/paged_kv_cache.h"

#include <cstring>
#include <string>

#include "format/row_codec.h"
#include "util/error.h"

namespace thinkeys {
PagedKVCache::PagedKVCache(std::vector<CacheLayerShape> layers, const CacheSpec& spec)
    : layers_(std::move(layers)),
      spec_(spec),
      footprint_(cache_footprint(layers_, spec)),
      pool_(footprint_.block_bytes, spec.budget_bytes, spec.huge_pages) {
  // Layer l's region holds slot b of every block b: the pool's capacity is
  // total_blocks x (sum of the sections), so the regions tile it exactly.
  std::byte* at = pool_.data(0);
  for (const LayerFootprint& layer : footprint_.layers) {
    regions_.push_back(at);
    at += layer.section_bytes() * static_cast<std::size_t>(pool_.total_blocks());
  }
}

void PagedKVCache::check_layer(int layer) const {
  if (layer < 0 || layer >= static_cast<int>(layers_.size())) throw Error("layer out of range");
}

void PagedKVCache::check_head(int layer, int head, bool key) const {
  check_layer(layer);
  const int heads = key ? layers_[layer].key_heads : layers_[layer].value_heads;
  if (head < 0 || head >= heads)
    throw Error(key ? "key head out of range" : "value head out of range");
}

std::byte* PagedKVCache::section(int layer, int block) const {
  return regions_[layer] +
         footprint_.layers[layer].section_bytes() * static_cast<std::size_t>(block);
}

std::size_t PagedKVCache::key_offset(int layer, int head) const {
  return head * footprint_.layers[layer].stride;
}
std::size_t PagedKVCache::value_offset(int layer, int head) const {
  const LayerFootprint& g = footprint_.layers[layer];
  return (head / g.share) * g.stride + g.key_stride + (head % g.share) * g.value_stride;
}

int PagedKVCache::add_sequence() {
  for (std::size_t i = 0; i < seqs_.size(); ++i)
    if (!seqs_[i].live) {
      seqs_[i].live = true;
      return static_cast<int>(i);
    }
  seqs_.push_back({});
  seqs_.back().live = true;
  return static_cast<int>(seqs_.size() - 1);
}

const PagedKVCache::Sequence& PagedKVCache::seq(int id) const {
  if (id < 0 || id >= static_cast<int>(seqs_.size()) || !seqs_[id].live)
    throw Error("no cached sequence with id " + std::to_string(id));
  return seqs_[id];
}
PagedKVCache::Sequence& PagedKVCache::seq(int id) {
  return const_cast<Sequence&>(static_cast<const PagedKVCache*>(this)->seq(id));
}

void PagedKVCache::remove_sequence(int id) {
  Sequence& s = seq(id);
  for (int b : s.blocks) pool_.give(b);
  s = Sequence{};
}

bool PagedKVCache::has_sequence(int id) const {
  return id >= 0 && id < static_cast<int>(seqs_.size()) && seqs_[id].live;
}

int PagedKVCache::sequences() const {
  int n = 0;
  for (const auto& s : seqs_) n += s.live;
  return n;
}

void PagedKVCache::reserve(int id, int tokens) {
  Sequence& s = seq(id);
  const int need = (tokens + spec_.block_tokens - 1) / spec_.block_tokens;
  const int have = static_cast<int>(s.blocks.size());
  if (need <= have) return;
  pool_.take(need - have, s.blocks);
  s.addresses.resize(layers_.size());
  for (std::size_t l = 0; l < layers_.size(); ++l)
    for (int i = have; i < need; ++i)
      s.addresses[l].push_back(section(static_cast<int>(l), s.blocks[i]));
}

int PagedKVCache::capacity(int id) const {
  return static_cast<int>(seq(id).blocks.size()) * spec_.block_tokens;
}
int PagedKVCache::length(int id) const { return seq(id).length; }
int PagedKVCache::blocks_of(int id) const { return static_cast<int>(seq(id).blocks.size()); }

void PagedKVCache::set_length(int id, int tokens) {
  if (tokens < 0 || tokens > capacity(id))
    throw Error("sequence length " + std::to_string(tokens) + " outside its reserved capacity of " +
                std::to_string(capacity(id)) + " tokens");
  seq(id).length = tokens;
}

std::byte* PagedKVCache::part_address(int id, int layer, std::size_t offset, int pos) {
  Sequence& s = seq(id);
  if (pos < 0 || pos >= static_cast<int>(s.blocks.size()) * spec_.block_tokens)
    throw Error("cache write at position " + std::to_string(pos) +
                " outside the sequence's reserved capacity of " + std::to_string(capacity(id)) +
                " tokens");
  return section(layer, s.blocks[pos / spec_.block_tokens]) + offset;
}

bool PagedKVCache::keys_by_channel(int layer) const {
  check_layer(layer);
  const CacheLayerShape& s = layers_[layer];
  if (s.value_heads == 0) return false;  // the values are read as the keys' leading elements
  // Full-width float keys that one query head each reads go token by token:
  // writing a token's key by channel misses once per channel (64 lines a
  // head, 768 a layer for 12 heads, each fetched from DRAM before it is
  // written), and with one query the channel layout has no query reuse to
  // buy that back. Keys several queries share (GQA), thin and quantized keys
  // keep it (docs/results/decode.md, "Full keys of one query").
  if (s.queries_per_key == 1 && s.key_width == s.value_width && !is_quantized(spec_.key_dtype))
    return false;
  // An odd block would leave int4 channels half a byte over the part.
  return spec_.keys_by_channel &&
         (spec_.key_dtype != CacheDType::Int4 || spec_.block_tokens % 2 == 0);
}

void PagedKVCache::write_key(int id, int layer, int head, int pos, const float* row) {
  check_head(layer, head, true);
  const RowFormat& f = key_format(layer);
  std::byte* part = part_address(id, layer, key_offset(layer, head), pos);
  const int slot = pos % spec_.block_tokens;
  if (!keys_by_channel(layer)) return encode_row(f, row, part + f.bytes() * slot);
  with_row_buffer(f.bytes(), [&](std::byte* encoded) {
    encode_row(f, row, encoded);
    scatter_row(f, spec_.block_tokens, slot, encoded, part);
  });
}

void PagedKVCache::write_value(int id, int layer, int head, int pos, const float* row) {
  check_head(layer, head, false);
  const RowFormat& f = value_format(layer);
  encode_row(f, row,
             part_address(id, layer, value_offset(layer, head), pos) +
                 f.bytes() * static_cast<std::size_t>(pos % spec_.block_tokens));
}

PagedRows PagedKVCache::keys(int id, int layer, int head) const {
  check_head(layer, head, true);
  const Sequence& s = seq(id);
  return {s.blocks.empty() ? nullptr : s.addresses[layer].data(), key_offset(layer, head),
          key_format(layer), spec_.block_tokens, keys_by_channel(layer)};
}

void PagedKVCache::read_key(int id, int layer, int head, int pos, float* row) const {
  check_head(layer, head, true);
  if (pos < 0 || pos >= capacity(id)) throw Error("cache read outside the reserved tokens");
  read_row(keys(id, layer, head), pos, row);
}

void PagedKVCache::read_value(int id, int layer, int head, int pos, float* row) const {
  check_head(layer, head, false);
  if (pos < 0 || pos >= capacity(id)) throw Error("cache read outside the reserved tokens");
  read_row(values(id, layer, head), pos, row);
}

PagedRows PagedKVCache::values(int id, int layer, int head) const {
  check_head(layer, head, false);
  const Sequence& s = seq(id);
  return {s.blocks.empty() ? nullptr : s.addresses[layer].data(), value_offset(layer, head),
          value_format(layer), spec_.block_tokens};
}

std::byte* PagedKVCache::block_data(int id, int layer, int i) {
  const Sequence& s = seq(id);
  check_layer(layer);
  if (i < 0 || i >= static_cast<int>(s.blocks.size())) throw Error("block index out of range");
  return section(layer, s.blocks[i]);
}

void PagedKVCache::copy_block(int id, int from, int to) {
  for (int l = 0; l < static_cast<int>(layers_.size()); ++l)
    std::memcpy(block_data(id, l, to), block_data(id, l, from), layer_block_bytes(l));
}

std::size_t PagedKVCache::payload_bytes_per_token() const {
  return footprint_.payload_bytes_per_token();
}

double PagedKVCache::bytes_per_token() const {
  return static_cast<double>(pool_.block_bytes()) / spec_.block_tokens;
}

}  // namespace thinkeys
