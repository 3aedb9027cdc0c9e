// config.json -> ModelConfig. An accepted config must describe a model the
// runtime can size: the derived widths are computed, which is where a bogus
// field would turn into a division by zero or an overflow.
#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include "io/hf_config.h"
#include "util/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string text(reinterpret_cast<const char*>(data), size);
  try {
    // The planner's mode: unsupported-but-shape-neutral settings are listed.
    std::vector<std::string> unsupported;
    (void)thinkeys::parse_hf_config(text, "config.json", &unsupported);
  } catch (const thinkeys::Error&) {
  }
  try {
    thinkeys::ModelConfig c = thinkeys::parse_hf_config(text, "config.json");
    long sum = c.group_size() + c.key_heads() + c.cache_value_heads() + c.cache_value_width() +
               c.v_rows() + c.rope_table_dim();
    for (int l = 0; l < std::min(c.n_layers, 4096); ++l)  // a huge count is legal, not slow
      sum += c.key_width(l) + c.cache_key_heads(l) + c.cache_key_width(l);
    sum += static_cast<long>(c.score_scale() * 1000);
    // Writing it back (what convert and compress do) must give a config that
    // parses to the same shapes; a refusal here is a bug, not bad input.
    thinkeys::ModelConfig again;
    try {
      again = thinkeys::parse_hf_config(thinkeys::hf_config_json(c), "round trip");
    } catch (const thinkeys::Error&) {
      __builtin_trap();
    }
    if (again.dim != c.dim || again.n_layers != c.n_layers || again.n_heads != c.n_heads ||
        again.n_kv_heads != c.n_kv_heads || again.head_dim != c.head_dim ||
        again.vocab_size != c.vocab_size || again.key_rank != c.key_rank)
      __builtin_trap();
    asm volatile("" : : "r"(sum));
  } catch (const thinkeys::Error&) {
  }
  return 0;
}
