#include "runtime/batch_decoder.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>

#include "config/cache_layout.h"
#include "model/kv_cache.h"
#include "model/layer_ops.h"
#include "model/query_keys.h"
#include "model/transformer.h"
#include "model/weights.h"
#include "runtime/fused_step.h"
#include "runtime/variant_rows.h"
#include "util/error.h"
#include "util/threads.h"

namespace thinkeys {
namespace {

// Tasks of at most kMaxQueries queries that `queries` query heads on one key
// head take (push_task_queries).
int query_chunks(int queries) { return (queries + kMaxQueries - 1) / kMaxQueries; }

// `whole` appended to `tasks` as tasks of at most kMaxQueries of its queries
// (query rows qw floats apart, output rows d), all reading the same keys and
// values, so that they run together and each block is read once. Queries
// split between shared value heads stay in one task. Returns how many.
int push_task_queries(const AttentionTask& whole, int qw, int d,
                      std::vector<AttentionTask>& tasks) {
  const int step = whole.n_values > 1 ? whole.n_queries : kMaxQueries;
  int n = 0;
  for (int g0 = 0; g0 < whole.n_queries; g0 += step, ++n) {
    AttentionTask t = whole;
    t.q = whole.q + std::size_t(g0) * qw;
    t.n_queries = std::min(step, whole.n_queries - g0);
    t.out = whole.out + std::size_t(g0) * d;
    tasks.push_back(t);
  }
  return n;
}

// Row `row` of a [rows, V] float tensor into `out`.
void copy_logits(const at::Tensor& logits, int64_t row, std::vector<float>& out) {
  const at::Tensor r = logits[row].contiguous();
  out.assign(r.data_ptr<float>(), r.data_ptr<float>() + r.numel());
}

uint64_t mix64(uint64_t z) {  // splitmix64's finalizer
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

// Counter-based (element i of a row is a hash of the row's key and i) so rows
// do not depend on fill order and layers can be filled on any thread; one
// hash gives two uniform values scaled to unit variance.
void synthetic_row(uint64_t key, int width, float* out) {
  constexpr float kScale = 1.7320508f / 8388608.0f;  // sqrt(3) / 2^23: [-sqrt 3, sqrt 3)
  for (int j = 0; j < width; j += 2) {
    const uint64_t z = mix64(key + static_cast<uint64_t>(j / 2 + 1) * 0x9E3779B97F4A7C15ull);
    out[j] = (static_cast<float>(static_cast<uint32_t>(z) >> 8) - 8388608.0f) * kScale;
    if (j + 1 < width) out[j + 1] = (static_cast<float>(z >> 40) - 8388608.0f) * kScale;
  }
}

}  // namespace

BatchDecoder::BatchDecoder(const Model& model, const BatchDecoderOptions& options)
    : model_(&model),
      cache_(cache_shape(model.config), options.cache),
      pool_(options.threads == compute_threads() ? compute_pool()
                                                 : std::make_shared<WorkPool>(options.threads)) {
  const ModelConfig& c = model.config;
  const bool latent = c.rope_mode() == RopeMode::Latent;
  if (options.fused) fused_ = std::make_unique<FusedStep>();
  shape_.head_dim = c.head_dim;
  // A key head's queries go in tasks of at most kMaxQueries (push_task_queries).
  const int per_key = c.n_heads / c.key_heads();
  const int chunks = query_chunks(per_key);
  shape_.max_queries = std::min(per_key, kMaxQueries);
  for (int l = 0; l < c.n_layers; ++l)
    shape_.max_key_width = std::max(shape_.max_key_width, c.key_width(l));
  shape_.block_tokens = options.cache.block_tokens;
  shape_.scale = static_cast<float>(c.score_scale());
  shape_.max_share = latent ? c.key_share() : 1;
  shape_.max_heads = c.key_heads() * chunks;
  if (latent && c.key_share() > 1 && chunks > 1)
    throw Error("decode attention: latent keys shared by " + std::to_string(c.key_share()) +
                " value heads take at most " + std::to_string(kMaxQueries) +
                " query heads per key head, not " + std::to_string(per_key));
  if (!c.is_standard_attention()) {
    // Every query head reads the one cached row; a task takes at most
    // kMaxQueries of them, so wider models give a row several tasks, run
    // together (max_heads) so that each block is read from memory once.
    variant_ = std::make_unique<VariantRows>(model);
    shape_.head_dim = variant_->value_width();
    shape_.max_queries = std::min(c.n_heads, kMaxQueries);
    shape_.max_key_width = variant_->key_width();
    shape_.max_heads = query_chunks(c.n_heads);
  }
  for (int t = 0; t < pool_->threads(); ++t) scratch_.emplace_back(shape_);
  if (latent) {
    if (c.positions == PositionKind::Rope) {
      at::Tensor f = model.rope_inv_freq.contiguous();
      rope_steps_ = std::make_unique<RopeSteps>(make_rope_steps(
          std::span<const float>(f.data_ptr<float>(), f.numel()), shape_.block_tokens));
    }
    latent_.resize(c.n_layers);
    for (int l = 0; l < c.n_layers; ++l) {
      up_t_.push_back(model.weights.layers[l].k_up.transpose(1, 2).contiguous());
      for (int kh = 0; kh < c.key_heads(); ++kh)
        latent_[l].push_back({up_t_[l][kh].data_ptr<float>(), c.key_share(), rope_steps_.get()});
    }
  }
}

BatchDecoder::~BatchDecoder() = default;

const ModelConfig& BatchDecoder::config() const { return model_->config; }

void BatchDecoder::use_model(const Model& model) {
  const ModelConfig &a = model_->config, &b = model.config;
  if (a.rope_mode() == RopeMode::Latent)
    throw Error("use_model: a latent-mode decoder keeps its model's key maps");
  bool same = a.n_layers == b.n_layers && a.dim == b.dim && a.n_heads == b.n_heads &&
              a.n_kv_heads == b.n_kv_heads && a.head_dim == b.head_dim &&
              a.hidden_dim == b.hidden_dim && a.vocab_size == b.vocab_size &&
              a.rope_mode() == b.rope_mode() && a.positions == b.positions &&
              a.attention.kind == b.attention.kind && a.mlp == b.mlp;
  for (int l = 0; same && l < a.n_layers; ++l)
    same = a.key_width(l) == b.key_width(l) && a.cache_key_width(l) == b.cache_key_width(l);
  if (!same) throw Error("use_model: the new model's shape differs from the decoder's");
  model_ = &model;
  if (fused_) fused_->layers.clear();  // its matrices are taken again at the next step
  if (variant_) variant_ = std::make_unique<VariantRows>(model);
}

int BatchDecoder::add(std::span<const int32_t> prompt, std::vector<float>* last_logits) {
  const ModelConfig& c = model_->config;
  if (prompt.empty()) throw Error("a sequence needs at least one prompt token");
  const int n = static_cast<int>(prompt.size());
  const int id = cache_.add_sequence();
  try {
    cache_.reserve(id, n);
    KVCache dense(c, n);
    at::Tensor logits = forward(*model_, prompt, dense, Logits::Last);
    // Encoding rows (f16 and quantized) is per element; writers touch
    // disjoint rows of reserved blocks, so layers and kinds run in parallel.
    pool_->run(2 * c.n_layers, [&](int item, int) {
      const int l = item / 2;
      const bool values = item % 2;
      // [heads, capacity, width]: row (h, t) starts at h * stride(0) + t * stride(1).
      const at::Tensor& X = values ? dense.values(l) : dense.keys(l);
      const float* p = X.data_ptr<float>();
      for (int h = 0; h < X.size(0); ++h)
        for (int t = 0; t < n; ++t) {
          const float* row = p + h * X.stride(0) + t * X.stride(1);
          if (values)
            cache_.write_value(id, l, h, t, row);
          else
            cache_.write_key(id, l, h, t, row);
        }
    });
    cache_.set_length(id, n);
    if (last_logits) copy_logits(logits, 0, *last_logits);
  } catch (...) {
    cache_.remove_sequence(id);
    throw;
  }
  return id;
}

int BatchDecoder::add_synthetic(int length, uint64_t seed) {
  const ModelConfig& c = model_->config;
  if (length < 1) throw Error("a synthetic sequence needs at least one cached token");
  if (c.positions == PositionKind::Learned && length > c.max_positions)
    throw Error("synthetic context of " + std::to_string(length) +
                " tokens exceeds the model's learned positions (" +
                std::to_string(c.max_positions) + ")");
  const std::vector<CacheLayerShape>& layers = cache_.layers();
  int width = 0;
  for (const auto& L : layers) width = std::max({width, L.key_width, L.value_width});
  const int id = cache_.add_sequence();
  try {
    cache_.reserve(id, length);
    const int bt = cache_.block_tokens();
    const int period_blocks = (kSyntheticPeriod + bt - 1) / bt;
    const int encoded = std::min(length, period_blocks * bt);
    std::vector<std::vector<float>> rows(pool_->threads(), std::vector<float>(width));
    // Writers touch disjoint rows of reserved blocks, so layers run in parallel.
    pool_->run(c.n_layers, [&](int l, int thread) {
      float* row = rows[thread].data();
      const CacheLayerShape& L = layers[l];
      for (int kind = 0; kind < 2; ++kind) {
        const int heads = kind ? L.value_heads : L.key_heads;
        const int w = kind ? L.value_width : L.key_width;
        for (int h = 0; h < heads; ++h) {
          const uint64_t head_key = mix64(
              seed ^ mix64((uint64_t{1} << 62) * kind + (static_cast<uint64_t>(l) << 32) + h));
          for (int t = 0; t < encoded; ++t) {
            synthetic_row(head_key + static_cast<uint64_t>(t) * (width + 1) * 0x9E3779B97F4A7C15ull,
                          w, row);
            if (kind)
              cache_.write_value(id, l, h, t, row);
            else
              cache_.write_key(id, l, h, t, row);
          }
        }
      }
    });
    const int blocks = cache_.blocks_of(id);
    if (blocks > period_blocks)
      pool_->run(blocks - period_blocks, [&](int i, int) {
        const int b = period_blocks + i;
        cache_.copy_block(id, b % period_blocks, b);
      });
    cache_.set_length(id, length);
  } catch (...) {
    cache_.remove_sequence(id);
    throw;
  }
  return id;
}

void BatchDecoder::truncate(int id, int length) {
  if (length < 0 || length > cache_.length(id))
    throw Error("cannot truncate sequence " + std::to_string(id) + " of " +
                std::to_string(cache_.length(id)) + " tokens to " + std::to_string(length));
  cache_.set_length(id, length);
}

void BatchDecoder::remove(int id) { cache_.remove_sequence(id); }

at::Tensor BatchDecoder::layer_attention(int l, const at::Tensor& h, const RopeAngles& angles,
                                         std::span<const int> ids,
                                         std::span<const int64_t> pos_of) {
  const ModelConfig& c = model_->config;
  const LayerWeights& L = model_->weights.layers[l];
  const int64_t B = h.size(0), H = c.n_heads, Hkv = c.n_kv_heads, d = c.head_dim;
  const int64_t nk = c.key_heads(), share = c.key_share();

  if (variant_) {
    const at::Tensor qkv = project(h, L.wqkv, L.bqkv, L.wqkv_scales).contiguous();
    at::Tensor out = at::empty({B, H * d}, at::kFloat);
    const at::Tensor cos = angles.cos.contiguous(), sin = angles.sin.contiguous();
    variant_attention(l, ids, qkv.data_ptr<float>(), static_cast<std::size_t>(qkv.size(1)),
                      cos.data_ptr<float>(), sin.data_ptr<float>(),
                      static_cast<std::size_t>(cos.size(-1)), pos_of, out.data_ptr<float>());
    return out;
  }
  QKV p = split_qkv(c, l, project(h, L.wqkv, L.bqkv, L.wqkv_scales));
  // Latent mode: k is the latent, rotated inside the kernel.
  QueryKeys qk = prepare_query_keys(c, L, l, p.q, p.k, angles);
  const at::Tensor q = qk.q.contiguous(), k = qk.k.contiguous(), v = p.v.contiguous();

  const int qw = static_cast<int>(q.size(2));
  const int G = static_cast<int>(H / nk);
  at::Tensor out = at::empty({B, H * d}, at::kFloat);
  tasks_.clear();
  value_rows_.clear();
  task_latent_.clear();
  value_rows_.reserve(B * Hkv);  // tasks point into it
  for (int64_t b = 0; b < B; ++b) {
    const int id = ids[b], pos = static_cast<int>(pos_of[b]);
    for (int64_t kh = 0; kh < nk; ++kh)
      cache_.write_key(id, l, static_cast<int>(kh), pos, k[b][kh].data_ptr<float>());
    for (int64_t vh = 0; vh < Hkv; ++vh) {
      cache_.write_value(id, l, static_cast<int>(vh), pos, v[b][vh].data_ptr<float>());
      value_rows_.push_back(cache_.values(id, l, static_cast<int>(vh)));
    }
    const int end = pos + 1;
    const int begin = c.sliding_window ? std::max(0, end - *c.sliding_window) : 0;
    for (int64_t kh = 0; kh < nk; ++kh)
      add_head_tasks(l, id, static_cast<int>(kh), q.data_ptr<float>() + (b * H + kh * G) * qw, qw,
                     &value_rows_[b * Hkv + kh * share], begin, end,
                     out.data_ptr<float>() + (b * H + kh * G) * d);
  }
  splits_.run(shape_, tasks_, task_latent_, *pool_, scratch_);
  return out;
}

void BatchDecoder::add_head_tasks(int l, int id, int kh, const float* q, int qw,
                                  const PagedRows* values, int begin, int end, float* out) {
  const ModelConfig& c = model_->config;
  AttentionTask t;
  t.q = q;
  t.n_queries = c.n_heads / c.key_heads();
  t.keys = cache_.keys(id, l, kh);
  t.values = values;
  t.n_values = c.key_share();  // shared past kMaxQueries: refused by the constructor
  t.begin = begin;
  t.end = end;
  t.out = out;
  const int n = push_task_queries(t, qw, c.head_dim, tasks_);
  if (!latent_.empty()) task_latent_.insert(task_latent_.end(), n, &latent_[l][kh]);
}

void BatchDecoder::variant_attention(int l, std::span<const int> ids, const float* qkv,
                                     std::size_t ld_qkv, const float* cos, const float* sin,
                                     std::size_t ld_angles, std::span<const int64_t> pos,
                                     float* att) {
  const ModelConfig& c = model_->config;
  const VariantRows& v = *variant_;
  const int B = static_cast<int>(ids.size()), H = v.heads(), kw = v.key_width();
  const int vw = v.value_width();
  auto grow = [](std::vector<float>& buf, std::size_t n) {
    if (buf.size() < n) buf.resize(n);
  };
  grow(variant_q_, std::size_t(B) * H * kw);
  grow(variant_out_, std::size_t(B) * H * vw);
  grow(variant_k_, kw);
  grow(variant_v_, vw);
  tasks_.clear();
  value_rows_.clear();
  task_latent_.clear();
  value_rows_.reserve(B);  // tasks point into it
  for (int b = 0; b < B; ++b) {
    const int id = ids[b], p = static_cast<int>(pos[b]);
    v.cache_rows(l, qkv + b * ld_qkv, cos + b * ld_angles, sin + b * ld_angles, variant_k_.data(),
                 variant_v_.data());
    cache_.write_key(id, l, 0, p, variant_k_.data());
    const PagedRows keys = cache_.keys(id, l, 0);
    if (v.values_in_keys()) {
      PagedRows rows = keys;
      rows.format = leading_elements(keys.format, vw);
      value_rows_.push_back(rows);
    } else {
      cache_.write_value(id, l, 0, p, variant_v_.data());
      value_rows_.push_back(cache_.values(id, l, 0));
    }
    AttentionTask t;
    t.q = variant_q_.data() + std::size_t(b) * H * kw;
    t.n_queries = H;
    t.keys = keys;
    t.values = &value_rows_.back();
    t.n_values = 1;
    t.end = p + 1;
    t.begin = c.sliding_window ? std::max(0, t.end - *c.sliding_window) : 0;
    t.out = variant_out_.data() + std::size_t(b) * H * vw;
    push_task_queries(t, kw, vw, tasks_);
  }
  // The per-head maps are weights read every step: heads share out over the
  // pool as the GEMVs' rows do.
  pool_->run(B * H, [&](int i, int) {
    const int b = i / H, h = i % H;
    v.query(l, qkv + b * ld_qkv, cos + b * ld_angles, sin + b * ld_angles, h,
            variant_q_.data() + std::size_t(i) * kw);
  });
  splits_.run(shape_, tasks_, task_latent_, *pool_, scratch_);
  pool_->run(B * H, [&](int i, int) {
    v.output(l, i % H, variant_out_.data() + std::size_t(i) * vw,
             att + std::size_t(i) * c.head_dim);
  });
}

void BatchDecoder::check_token(int32_t token) const {
  const ModelConfig& c = model_->config;
  if (token < 0 || token >= c.vocab_size)
    throw Error("token id " + std::to_string(token) + " outside the vocabulary (" +
                std::to_string(c.vocab_size) + ")");
}

void BatchDecoder::check_context(int64_t tokens) const {
  const ModelConfig& c = model_->config;
  if (c.positions == PositionKind::Learned && tokens > c.max_positions)
    throw Error("context of " + std::to_string(tokens) +
                " tokens exceeds the model's learned positions (" +
                std::to_string(c.max_positions) + ")");
}

LogitRows BatchDecoder::step(std::span<const int> ids, std::span<const int32_t> tokens) {
  const int64_t B = static_cast<int64_t>(ids.size());
  if (B == 0) throw Error("decode step with no sequences");
  if (tokens.size() != ids.size()) throw Error("decode step needs one token per sequence");
  std::vector<int64_t> pos(B);
  for (int64_t b = 0; b < B; ++b) {
    if (std::count(ids.begin(), ids.end(), ids[b]) != 1)
      throw Error("sequence " + std::to_string(ids[b]) + " appears twice in one decode step");
    check_token(tokens[b]);
    pos[b] = cache_.length(ids[b]);
    check_context(pos[b] + 1);
  }
  // Grow every sequence first: running out here leaves all lengths as they were.
  for (int64_t b = 0; b < B; ++b) cache_.reserve(ids[b], static_cast<int>(pos[b]) + 1);
  const int V = model_->config.vocab_size;
  logits_.resize(static_cast<std::size_t>(B) * V);  // allocates only for a larger batch
  if (fused_) {
    fused_rows(ids, tokens, pos, logits_.data());
  } else {
    const at::Tensor logits = project(forward_rows(ids, tokens, pos), model_->weights.lm_head, {},
                                      model_->weights.lm_head_scales)
                                  .contiguous();
    std::memcpy(logits_.data(), logits.data_ptr<float>(), logits_.size() * sizeof(float));
  }
  for (int64_t b = 0; b < B; ++b) cache_.set_length(ids[b], static_cast<int>(pos[b]) + 1);
  return {std::span<const float>(logits_), V};
}

void BatchDecoder::extend(int id, std::span<const int32_t> tokens,
                          std::vector<float>* last_logits) {
  const int64_t T = static_cast<int64_t>(tokens.size());
  if (T == 0) throw Error("extending a sequence needs at least one token");
  const int start = cache_.length(id);  // throws for an unknown id
  for (int32_t t : tokens) check_token(t);
  check_context(start + T);
  cache_.reserve(id, static_cast<int>(start + T));  // all or nothing
  std::vector<int> ids(T, id);
  std::vector<int64_t> pos(T);
  for (int64_t i = 0; i < T; ++i) pos[i] = start + i;
  at::Tensor x = forward_rows(ids, tokens, pos);
  cache_.set_length(id, static_cast<int>(start + T));
  if (last_logits)
    copy_logits(
        project(x.narrow(0, T - 1, 1), model_->weights.lm_head, {}, model_->weights.lm_head_scales),
        0, *last_logits);
}

at::Tensor BatchDecoder::forward_rows(std::span<const int> ids, std::span<const int32_t> tokens,
                                      std::span<const int64_t> pos) {
  const ModelConfig& c = model_->config;
  const auto& w = model_->weights;
  at::NoGradGuard no_grad;
  at::Tensor tok = at::tensor(std::vector<int64_t>(tokens.begin(), tokens.end()), at::kLong);
  at::Tensor positions = at::tensor(std::vector<int64_t>(pos.begin(), pos.end()), at::kLong);
  at::Tensor x = embed(w.tok_emb, w.tok_emb_scales, tok);
  if (c.positions == PositionKind::Learned) x = x + w.pos_emb.index_select(0, positions);
  const RopeAngles angles = rope_angles(c, model_->rope_inv_freq, positions.to(at::kFloat));
  for (int l = 0; l < c.n_layers; ++l) {
    const LayerWeights& L = w.layers[l];
    at::Tensor h = normalize(c, x, L.attn_norm, L.attn_norm_bias);
    x = x + project(layer_attention(l, h, angles, ids, pos), L.wo, L.bo, L.wo_scales);
    h = normalize(c, x, L.mlp_norm, L.mlp_norm_bias);
    x = x + feed_forward(c, L, h);
  }
  return normalize(c, x, w.final_norm, w.final_norm_bias);
}

}  // namespace thinkeys
