#include "plan/plan_report.h"

#include <cstdarg>
#include <cstdio>
#include <nlohmann/json.hpp>

#include "plan/byte_size.h"

namespace thinkeys {
namespace {

void add(std::string& out, const char* fmt, ...) {
  char buf[1024];
  va_list args;
  va_start(args, fmt);
  std::vsnprintf(buf, sizeof buf, fmt, args);
  va_end(args);
  out += buf;
}

// 6738415616 -> "6,738,415,616".
std::string grouped(long long n) {
  std::string digits = std::to_string(n), out;
  for (std::size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0) out += ',';
    out += digits[i];
  }
  return out;
}

std::string gb(double bytes) { return format_bytes(bytes, true); }

std::string both(double bytes) {
  return format_bytes(bytes, false) + " = " + format_bytes(bytes, true);
}

}  // namespace

std::string plan_table_text(const CapacityPlan& p, const std::string& source) {
  const ModelConfig& c = p.config;
  std::string out;
  add(out, "model      %s\n", source.c_str());
  add(out, "           %s, %d layers, %d heads, %d KV heads x %d", c.architecture.c_str(),
      c.n_layers, c.n_heads, c.n_kv_heads, c.head_dim);
  if (c.has_thin_keys()) add(out, ", thin keys");
  if (c.is_mla() || c.is_lrkv()) add(out, ", %s attention", to_string(c.attention.kind));
  add(out, ", max context %d\n", c.max_positions);
  if (p.weight_dtype == "none")
    add(out, "weights    not counted (--weights none); %s parameters\n",
        grouped(p.parameters.total).c_str());
  else
    add(out, "weights    %s parameters as %s (%s) = %s; a decode step reads %s\n",
        grouped(p.parameters.total).c_str(), p.weight_dtype.c_str(),
        p.weight_dtype_stored ? "as stored" : "--weights", both(p.weight_bytes).c_str(),
        gb(p.weight_read_bytes).c_str());
  add(out, "memory     %s", both(p.memory_bytes).c_str());
  if (p.devices > 1) add(out, " on %d devices", p.devices);
  add(out, "; reserve %s for activations, logits and workspace\n",
      format_bytes(static_cast<double>(p.reserve_bytes)).c_str());
  add(out, "KV budget  %s\n", both(p.cache_budget_bytes).c_str());
  add(out,
      "cache      paged, %d-token blocks (sequences take whole blocks); int8/int4 rows carry one "
      "f16 scale per 32 values\n",
      p.block_tokens);
  if (p.bandwidth_gb_per_s)
    add(out,
        "decode     floor from bytes read per step at %.1f GB/s: weights + each sequence's K and "
        "V\n",
        *p.bandwidth_gb_per_s);
  for (const auto& note : p.notes) add(out, "note       %s\n", note.c_str());

  for (const PlanTable& t : p.tables) {
    add(out, "\ncontext %lld tokens%s\n", t.ctx, t.beyond_model_context ? " *" : "");
    add(out, "  %-14s %-4s %-4s %9s %9s %11s %10s %11s %8s", "keys", "K", "V", "K B/tok", "V B/tok",
        "per seq", "sequences", "longest", "vs f16");
    if (p.bandwidth_gb_per_s) add(out, " %10s %11s", "1 seq ms", "all ms/tok");
    add(out, "\n");
    for (const PlanRow& r : t.rows) {
      add(out, "  %-14s %-4s %-4s %9zu %9zu %11s %10lld %11lld %8.3f", r.keys.c_str(),
          to_string(r.key_dtype), to_string(r.value_dtype), r.key_bytes_per_token,
          r.value_bytes_per_token, gb(static_cast<double>(r.capacity.bytes_per_sequence)).c_str(),
          r.capacity.sequences, r.capacity.longest_tokens, r.ratio_to_full_f16);
      if (r.step_ms_one) {
        add(out, " %10.2f", *r.step_ms_one);
        if (r.token_ms_full_batch)
          add(out, " %11.3f", *r.token_ms_full_batch);
        else
          add(out, " %11s", "-");
      }
      add(out, "\n");
    }
  }
  add(out,
      "\nK/V B/tok: bytes of one token's rows and scales; per seq: whole blocks; sequences: of "
      "this length at once; longest: one sequence alone; vs f16: per seq against full-width f16 "
      "keys and values.\n");
  return out;
}

std::string plan_json(const CapacityPlan& p, const std::string& source) {
  using nlohmann::json;
  const ModelConfig& c = p.config;
  json j = {
      {"source", source},
      {"architecture", c.architecture},
      {"layers", c.n_layers},
      {"heads", c.n_heads},
      {"kv_heads", c.n_kv_heads},
      {"head_dim", c.head_dim},
      {"max_positions", c.max_positions},
      {"attention", c.is_mla()    ? "mla"
                    : c.is_lrkv() ? "lrkv"
                                  : "standard"},
      {"parameters", p.parameters.total},
      {"parameters_read_per_step", p.parameters.per_step},
      {"weight_dtype", p.weight_dtype},
      {"weight_dtype_as_stored", p.weight_dtype_stored},
      {"weight_bytes", p.weight_bytes},
      {"weight_bytes_read_per_step", p.weight_read_bytes},
      {"memory_bytes", p.memory_bytes},
      {"devices", p.devices},
      {"reserve_bytes", p.reserve_bytes},
      {"cache_budget_bytes", p.cache_budget_bytes},
      {"cache", "paged"},
      {"block_tokens", p.block_tokens},
      {"quant_group", kDefaultQuantGroup},
      {"bandwidth_gb_per_s", p.bandwidth_gb_per_s ? json(*p.bandwidth_gb_per_s) : json()},
      {"notes", p.notes},
      {"contexts", json::array()},
  };
  for (const PlanTable& t : p.tables) {
    json rows = json::array();
    for (const PlanRow& r : t.rows) {
      json row = {
          {"keys", r.keys},
          {"key_width_min", r.min_key_width},
          {"key_width_max", r.max_key_width},
          {"key_dtype", to_string(r.key_dtype)},
          {"value_dtype", to_string(r.value_dtype)},
          {"key_bytes_per_token", r.key_bytes_per_token},
          {"value_bytes_per_token", r.value_bytes_per_token},
          {"pool_bytes_per_token", r.pool_bytes_per_token},
          {"block_bytes", r.capacity.block_bytes},
          {"blocks", r.capacity.blocks},
          {"blocks_per_sequence", r.capacity.blocks_per_sequence},
          {"bytes_per_sequence", r.capacity.bytes_per_sequence},
          {"sequences", r.capacity.sequences},
          {"longest_tokens", r.capacity.longest_tokens},
          {"ratio_to_full_f16", r.ratio_to_full_f16},
      };
      if (r.step_ms_one) row["step_ms_one_sequence"] = *r.step_ms_one;
      if (r.token_ms_full_batch) row["token_ms_full_batch"] = *r.token_ms_full_batch;
      rows.push_back(row);
    }
    j["contexts"].push_back(
        {{"ctx", t.ctx}, {"beyond_model_context", t.beyond_model_context}, {"rows", rows}});
  }
  return j.dump(2) + "\n";
}

}  // namespace thinkeys
