#include "checkpoint/llama2c_checkpoint.h"

#include <cstdint>
#include <cstring>

#include "io/llama2c_header.h"
#include "util/error.h"
#include "util/mapped_file.h"

namespace fs = std::filesystem;

namespace thinkeys {
namespace {

// Reorders the rows of a [heads*d, D] projection from adjacent RoPE pairs
// (2i, 2i+1) to rotate-half pairs (i, i+d/2); scores are unchanged because q
// and k get the same permutation.
at::Tensor adjacent_to_half(const at::Tensor& w, int64_t heads, int64_t d) {
  return w.view({heads, d / 2, 2, w.size(1)})
      .transpose(1, 2)
      .reshape({heads * d, w.size(1)})
      .contiguous();
}

}  // namespace

Model load_llama2c_checkpoint(const fs::path& file) {
  MappedFile mf(file);
  auto bytes = mf.bytes();
  const Llama2cHeader header = parse_llama2c_header(bytes, bytes.size(), file.string());
  const ModelConfig& c = header.config;
  const bool shared_classifier = header.shared_classifier;
  const int64_t vocab = c.vocab_size;
  const int64_t D = c.dim, F = c.hidden_dim, L = c.n_layers, d = c.head_dim;
  const int64_t kv_dim = static_cast<int64_t>(c.n_kv_heads) * d;
  const int64_t rope_table = static_cast<int64_t>(c.max_positions) * d / 2;

  size_t offset = kLlama2cHeaderBytes;
  auto take = [&](std::vector<int64_t> shape) {
    at::Tensor t = at::empty(shape, at::kFloat);
    std::memcpy(t.data_ptr(), bytes.data() + offset, t.nbytes());
    offset += t.nbytes();
    return t;
  };
  Model m;
  m.config = c;
  auto& w = m.weights;
  w.layers.resize(L);
  w.tok_emb = take({vocab, D});
  for (auto& l : w.layers) l.attn_norm = take({D});
  for (auto& l : w.layers) l.wq = adjacent_to_half(take({D, D}), c.n_heads, d);
  for (auto& l : w.layers) l.wk = adjacent_to_half(take({kv_dim, D}), c.n_kv_heads, d);
  for (auto& l : w.layers) l.wv = take({kv_dim, D});
  for (auto& l : w.layers) l.wo = take({D, D});
  for (auto& l : w.layers) l.mlp_norm = take({D});
  for (auto& l : w.layers) l.w_gate = take({F, D});
  for (auto& l : w.layers) l.w_down = take({D, F});
  for (auto& l : w.layers) l.w_up = take({F, D});
  w.final_norm = take({D});
  offset += static_cast<size_t>(2 * rope_table) * 4;  // precomputed RoPE tables, recomputed here
  if (!shared_classifier) w.lm_head = take({vocab, D});
  m.finalize();
  return m;
}

}  // namespace thinkeys
