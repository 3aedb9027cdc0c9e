#pragma once
// The weight formats a model can run on, by name, without libtorch: option
// parsing and reports need the names, not the conversion (model/weight_format.h).
#include <string>

#include "config/model_config.h"

namespace thinkeys {

enum class WeightFormat { F32, BF16, F16, Int8, Int4 };

// "f32", "bf16", "f16", "int8", "int4"; anything else is an Error naming the choices.
WeightFormat parse_weight_format(const std::string& name);
const char* weight_format_name(WeightFormat f);
// Int8 and int4: integer levels packed for the decode kernels, a load-time
// format that cannot be saved or converted again.
inline bool packed_format(WeightFormat f) {
  return f == WeightFormat::Int8 || f == WeightFormat::Int4;
}
// The format of the checkpoint's own dtype (config.weight_dtype).
WeightFormat stored_weight_format(const ModelConfig& c);

}  // namespace thinkeys
