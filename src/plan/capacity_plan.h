#pragma once
// `thinkeys plan`: for a model config and a memory budget, how many
// sequences of each context length fit with full, thin or quantized keys.
// Every cache figure comes from cache_footprint() and sequence_capacity(),
// the functions PagedKVCache sizes its blocks with; weights are counted from
// the config (parameter_count.h). Torch-free.
#include <cstddef>
#include <optional>
#include <string>
#include <vector>

#include "cache/cache_footprint.h"
#include "config/model_config.h"
#include "plan/parameter_count.h"
#include "plan/sequence_capacity.h"

namespace thinkeys {

// Which key width a row of the plan uses.
struct KeyChoice {
  enum class Kind { Configured, Ratio, Rank };
  Kind kind = Kind::Configured;  // the config's own widths (thin ranks included)
  double ratio = 1;              // Ratio: of the full key width (head_dim x share)
  int rank = 0;                  // Rank: this width in every layer
};

struct PlanOptions {
  std::size_t memory_bytes = 0;  // over all devices
  int devices = 1;
  // Activations, logits, the decode workspace and the runtime's own
  // allocations, per device; kept out of the cache budget.
  std::size_t reserve_bytes = std::size_t{1} << 30;
  std::vector<long long> contexts = {4096, 32768, 131072};
  // Empty: the config's widths, plus keys at d/4 for a model without thin keys.
  std::vector<KeyChoice> keys;
  std::vector<CacheDType> key_dtypes = {CacheDType::F16, CacheDType::Int8, CacheDType::Int4};
  std::vector<CacheDType> value_dtypes = {CacheDType::F16};
  int block_tokens = CacheSpec{}.block_tokens;
  int group = kDefaultQuantGroup;
  // Bytes per weight: "f32", "f16", "bf16", "int8", "int4" or "none" (weights
  // held elsewhere); empty: the dtype the checkpoint stores (config.json
  // torch_dtype).
  std::string weights;
  std::optional<double> bandwidth_gb_per_s;  // adds the decode-time floor
};

struct PlanRow {
  std::string keys;  // e.g. "full 128", "d/4 32", "ranks 8-40"
  int min_key_width = 0, max_key_width = 0;
  CacheDType key_dtype = CacheDType::F16, value_dtype = CacheDType::F16;
  // Payload of one token, keys and values (rows and scales), and what the
  // pool spends per token with block alignment.
  std::size_t key_bytes_per_token = 0, value_bytes_per_token = 0;
  double pool_bytes_per_token = 0;
  SequenceCapacity capacity;
  double ratio_to_full_f16 = 1;  // bytes per sequence against full-width f16 keys and values
  // Decode-time floor from the bytes a step reads at this bandwidth: one
  // sequence alone, and per token with every sequence that fits decoding.
  std::optional<double> step_ms_one, token_ms_full_batch;
};

struct PlanTable {
  long long ctx = 0;
  bool beyond_model_context = false;  // ctx > max_position_embeddings
  std::vector<PlanRow> rows;
};

struct CapacityPlan {
  ModelConfig config;
  std::string weight_dtype;         // as used: "bf16", "none", ...
  bool weight_dtype_stored = true;  // taken from the checkpoint, not --weights
  ParameterCount parameters;
  std::size_t weight_bytes = 0;       // held
  std::size_t weight_read_bytes = 0;  // read per decode step
  std::size_t memory_bytes = 0, reserve_bytes = 0, cache_budget_bytes = 0;
  int devices = 1;
  int block_tokens = 0;
  std::optional<double> bandwidth_gb_per_s;
  std::vector<std::string> notes;
  std::vector<PlanTable> tables;
};

// Throws Error with one clear message for a budget the weights and reserve
// do not leave room in, a key rank wider than the head, a ratio outside
// (0, 1], a context that is not positive, or a cache spec the cache refuses.
CapacityPlan plan_capacity(const ModelConfig& config, const PlanOptions& options);

// The cache budget left after weights and reserve (what a server would give
// CacheSpec::budget_bytes); throws Error when nothing is left.
std::size_t cache_budget(std::size_t memory_bytes, std::size_t weight_bytes,
                         std::size_t reserve_bytes);

// Bytes per weight element for a --weights name ("f32", "float32", "bf16",
// "bfloat16", "f16", "float16", "int8" and "int4" with their scales, "none");
// throws Error on others.
double weight_element_bytes(const std::string& dtype);

}  // namespace thinkeys
