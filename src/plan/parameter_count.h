#pragma once
// Weights a model holds and a decode step reads, counted from its config
// alone (no weights file needed): every tensor the loaders read, for every
// architecture and attention variant the runtime knows. Torch-free; the
// tests check it against Model::parameter_count() of loaded models.
#include <cstdint>

#include "config/model_config.h"

namespace thinkeys {

struct ParameterCount {
  int64_t total = 0;     // every weight element (a tied head counted once)
  int64_t per_step = 0;  // elements one decode step reads: all but the embedding
                         // and position tables (one row each), the tied head once
  // Of both: MLA's and LRKV's per-head up maps, which int8 / int4 models
  // hold as bf16 (model/weight_format.h).
  int64_t float_maps = 0;
};

ParameterCount count_parameters(const ModelConfig& config);

}  // namespace thinkeys
