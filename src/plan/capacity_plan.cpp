#include "plan/capacity_plan.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "cache/block_pool.h"
#include "config/cache_layout.h"
#include "plan/byte_size.h"
#include "util/error.h"

namespace thinkeys {
namespace {

std::string canonical_dtype(const std::string& name) {
  if (name == "f32" || name == "float32") return "f32";
  if (name == "f16" || name == "float16") return "f16";
  if (name == "bf16" || name == "bfloat16") return "bf16";
  if (name == "int8") return "int8";
  if (name == "int4") return "int4";
  if (name == "none") return "none";
  return "";
}

// Keys of one row of the plan: the layer shapes and a label.
struct KeyLayout {
  std::vector<CacheLayerShape> layers;
  std::string label;
  int min_width = 0, max_width = 0;
};

std::string ratio_label(double ratio) {
  const double inverse = 1.0 / ratio;
  char buf[32];
  if (ratio == 1)
    return "full";
  else if (std::fabs(inverse - std::round(inverse)) < 1e-9)
    std::snprintf(buf, sizeof buf, "d/%.0f", inverse);
  else
    std::snprintf(buf, sizeof buf, "%.3g d", ratio);
  return buf;
}

KeyLayout key_layout(const ModelConfig& c, const KeyChoice& k) {
  KeyLayout out;
  out.layers = cache_shape(c);
  const int full = c.head_dim * c.key_share();
  switch (k.kind) {
    case KeyChoice::Kind::Configured:
      break;
    case KeyChoice::Kind::Ratio: {
      if (!(k.ratio > 0 && k.ratio <= 1))
        throw Error("key ratio " + std::to_string(k.ratio) +
                    " outside (0, 1]: it is the fraction of the full key width kept");
      const int r = std::max(1, static_cast<int>(std::lround(k.ratio * full)));
      for (auto& L : out.layers) L.key_width = r;
      break;
    }
    case KeyChoice::Kind::Rank:
      if (k.rank < 1) throw Error("key rank must be at least 1, got " + std::to_string(k.rank));
      if (k.rank > full)
        throw Error("key rank " + std::to_string(k.rank) + " is larger than the head: keys are " +
                    std::to_string(full) + " wide (head_dim " + std::to_string(c.head_dim) +
                    (c.key_share() > 1 ? " x " + std::to_string(c.key_share()) + " shared heads"
                                       : std::string()) +
                    ")");
      for (auto& L : out.layers) L.key_width = k.rank;
      break;
  }
  out.min_width = out.max_width = out.layers.front().key_width;
  for (const auto& L : out.layers) {
    out.min_width = std::min(out.min_width, L.key_width);
    out.max_width = std::max(out.max_width, L.key_width);
  }
  const std::string widths = out.min_width == out.max_width ? std::to_string(out.min_width)
                                                            : std::to_string(out.min_width) + "-" +
                                                                  std::to_string(out.max_width);
  if (k.kind == KeyChoice::Kind::Ratio)
    out.label = ratio_label(k.ratio) + " " + widths;
  else if (k.kind == KeyChoice::Kind::Rank)
    out.label = "rank " + widths;
  else if (out.min_width == full && out.max_width == full)
    out.label = "full " + widths;
  else
    out.label = (out.min_width == out.max_width ? "rank " : "ranks ") + widths;
  return out;
}

double ms_at(double bytes, double gb_per_s) { return bytes / (gb_per_s * 1e9) * 1e3; }

}  // namespace

double weight_element_bytes(const std::string& dtype) {
  const std::string d = canonical_dtype(dtype);
  if (d == "f32") return 4;
  if (d == "f16" || d == "bf16") return 2;
  // Levels plus one f16 scale per group (kernels/weight_rows.h: 64 weights
  // for int8, 32 for int4); the f32 norms are a rounding error beside them.
  if (d == "int8") return 1 + 2.0 / 64;
  if (d == "int4") return 0.5 + 2.0 / 32;
  if (d == "none") return 0;
  throw Error("unknown weight dtype '" + dtype + "' (expected f32, f16, bf16, int8, int4 or none)");
}

std::size_t cache_budget(std::size_t memory, std::size_t weights, std::size_t reserve) {
  if (memory <= weights + reserve)
    throw Error("the memory budget of " + format_bytes(static_cast<double>(memory)) +
                " leaves nothing for the KV cache: the weights take " +
                format_bytes(static_cast<double>(weights)) + " and the reserve " +
                format_bytes(static_cast<double>(reserve)));
  return memory - weights - reserve;
}

CapacityPlan plan_capacity(const ModelConfig& c, const PlanOptions& o) {
  if (o.devices < 1) throw Error("device count must be positive");
  if (o.contexts.empty()) throw Error("no context lengths to plan for");
  for (long long ctx : o.contexts)
    if (ctx <= 0) throw Error("context length must be positive, got " + std::to_string(ctx));
  if (o.bandwidth_gb_per_s && !(*o.bandwidth_gb_per_s > 0))
    throw Error("bandwidth must be positive GB/s");

  CapacityPlan p;
  p.config = c;
  p.devices = o.devices;
  p.block_tokens = o.block_tokens;
  p.bandwidth_gb_per_s = o.bandwidth_gb_per_s;

  // Weights.
  p.weight_dtype_stored = o.weights.empty();
  const std::string dtype = o.weights.empty() ? c.weight_dtype : o.weights;
  if (canonical_dtype(dtype).empty())
    throw Error(o.weights.empty()
                    ? "the checkpoint stores weights as '" + dtype +
                          "'; say what to count them as with --weights f32|f16|bf16|int8|int4"
                    : "unknown weight dtype '" + dtype +
                          "' (expected f32, f16, bf16, int8, int4 or none)");
  p.weight_dtype = canonical_dtype(dtype);
  p.parameters = count_parameters(c);
  const double element = weight_element_bytes(p.weight_dtype);
  const bool packed = p.weight_dtype == "int8" || p.weight_dtype == "int4";
  const double map_element = packed ? 2.0 : element;
  auto bytes = [&](int64_t elements) {
    return static_cast<std::size_t>(static_cast<double>(elements - p.parameters.float_maps) *
                                        element +
                                    static_cast<double>(p.parameters.float_maps) * map_element);
  };
  p.weight_bytes = bytes(p.parameters.total);
  p.weight_read_bytes = bytes(p.parameters.per_step);

  p.memory_bytes = o.memory_bytes;
  p.reserve_bytes = o.reserve_bytes * static_cast<std::size_t>(o.devices);
  p.cache_budget_bytes = cache_budget(o.memory_bytes, p.weight_bytes, p.reserve_bytes);

  if (o.devices > 1) {
    p.notes.push_back(std::to_string(o.devices) +
                      " devices counted as one pool: weights and KV heads split evenly over them "
                      "(tensor parallel), the reserve taken on each");
    if (c.n_kv_heads % o.devices != 0)
      p.notes.push_back("the " + std::to_string(c.n_kv_heads) +
                        " KV heads do not split evenly over " + std::to_string(o.devices) +
                        " devices: per-device pools hold less than this");
  }
  const long long read_window = c.sliding_window ? *c.sliding_window : 0;
  if (c.sliding_window)
    p.notes.push_back("sliding window of " + std::to_string(*c.sliding_window) +
                      " tokens: the cache keeps every token (counted in full), a decode step reads "
                      "only the window");

  // The reference every row is compared with: full-width f16 keys and values.
  const std::vector<CacheLayerShape> full_f16_layers(
      c.n_layers, {c.n_kv_heads, c.head_dim, c.n_kv_heads, c.head_dim});
  CacheSpec reference_spec;
  reference_spec.key_dtype = reference_spec.value_dtype = CacheDType::F16;
  reference_spec.block_tokens = o.block_tokens;
  reference_spec.group = o.group;
  const CacheFootprint reference = cache_footprint(full_f16_layers, reference_spec);

  struct Variant {
    std::string label;
    int min_width = 0, max_width = 0;
    CacheDType k = CacheDType::F32, v = CacheDType::F32;
    CacheFootprint paged;
    std::size_t key_bytes = 0, value_bytes = 0;
  };
  std::vector<Variant> variants;
  auto add = [&](const std::string& label, int min_width, int max_width,
                 const std::vector<CacheLayerShape>& layers, CacheDType kd, CacheDType vd) {
    CacheSpec spec;
    spec.key_dtype = kd;
    spec.value_dtype = vd;
    spec.block_tokens = o.block_tokens;
    spec.group = o.group;
    CacheFootprint f = cache_footprint(layers, spec);
    if (f.blocks_in_budget(p.cache_budget_bytes) > BlockPool::kMaxBlocks)
      throw Error("a cache budget of " + format_bytes(static_cast<double>(p.cache_budget_bytes)) +
                  " holds " + std::to_string(f.blocks_in_budget(p.cache_budget_bytes)) +
                  " blocks, more than the pool's limit of 2^30; use larger --block-tokens");
    variants.push_back({label, min_width, max_width, kd, vd, f, f.key_payload_per_token,
                        f.value_payload_per_token});
  };
  if (c.is_standard_attention()) {
    std::vector<KeyChoice> keys = o.keys;
    if (keys.empty()) {
      keys.push_back({});
      if (!c.has_thin_keys() && c.key_share() == 1) keys.push_back({KeyChoice::Kind::Ratio, 0.25});
    }
    std::vector<KeyLayout> layouts;
    for (const KeyChoice& k : keys) layouts.push_back(key_layout(c, k));
    for (const KeyLayout& layout : layouts)
      for (CacheDType kd : o.key_dtypes)
        for (CacheDType vd : o.value_dtypes)
          add(layout.label, layout.min_width, layout.max_width, layout.layers, kd, vd);
  } else {
    // MLA and LRKV: one cached row per token that every query head reads
    // (config/cache_layout.h), at the widths the model was trained with.
    const int w = c.cache_key_width(0);
    const std::string label = std::string(c.is_mla() ? "MLA latent " : "LRKV ") + std::to_string(w);
    for (CacheDType kd : o.key_dtypes) {
      if (c.is_mla() && is_quantized(kd)) continue;
      if (c.is_mla())  // no value rows: the values are the keys' latent part
        add(label, w, w, cache_shape(c), kd, kd);
      else
        for (CacheDType vd : o.value_dtypes) add(label, w, w, cache_shape(c), kd, vd);
    }
    if (variants.empty())
      throw Error(
          "MLA caches its latent, which the values read in place, as f32, f16 or bf16 "
          "keys: quantized --cache-k does not apply");
    std::string note = std::string(to_string(c.attention.kind)) + ": per layer and token " +
                       std::to_string(w) + " key values";
    note += c.is_mla() ? " whose first " + std::to_string(c.attention.latent) +
                             " (the latent) are also the values; --cache-v does not apply, "
                             "and quantized --cache-k dtypes are left out (the values read "
                             "the keys in place)"
                       : " and " + std::to_string(c.cache_value_width()) + " values";
    if (!o.keys.empty()) note += "; --key-ratio and --key-rank do not apply";
    p.notes.push_back(note);
  }

  for (long long ctx : o.contexts) {
    PlanTable t;
    t.ctx = ctx;
    t.beyond_model_context = ctx > c.max_positions;
    const double full_bytes = static_cast<double>(
        sequence_capacity(reference, p.cache_budget_bytes, ctx).bytes_per_sequence);
    for (const Variant& v : variants) {
      PlanRow r;
      r.keys = v.label;
      r.min_key_width = v.min_width;
      r.max_key_width = v.max_width;
      r.key_dtype = v.k;
      r.value_dtype = v.v;
      r.key_bytes_per_token = v.key_bytes;
      r.value_bytes_per_token = v.value_bytes;
      r.capacity = sequence_capacity(v.paged, p.cache_budget_bytes, ctx);
      r.pool_bytes_per_token = v.paged.bytes_per_token();
      r.ratio_to_full_f16 = static_cast<double>(r.capacity.bytes_per_sequence) / full_bytes;
      if (o.bandwidth_gb_per_s) {
        const double read_tokens =
            static_cast<double>(read_window > 0 ? std::min(ctx, read_window) : ctx);
        const double per_sequence =
            read_tokens * static_cast<double>(r.key_bytes_per_token + r.value_bytes_per_token);
        const double weights = static_cast<double>(p.weight_read_bytes);
        r.step_ms_one = ms_at(weights + per_sequence, *o.bandwidth_gb_per_s);
        if (r.capacity.sequences > 0) {
          const double n = static_cast<double>(r.capacity.sequences);
          r.token_ms_full_batch = ms_at(weights + n * per_sequence, *o.bandwidth_gb_per_s) / n;
        }
      }
      t.rows.push_back(std::move(r));
    }
    p.tables.push_back(std::move(t));
  }
  if (std::any_of(p.tables.begin(), p.tables.end(),
                  [](const PlanTable& t) { return t.beyond_model_context; }))
    p.notes.push_back("contexts marked * are longer than the model's max_position_embeddings (" +
                      std::to_string(c.max_positions) +
                      "): memory is counted, but the model "
                      "was not trained that long");
  return p;
}

}  // namespace thinkeys
