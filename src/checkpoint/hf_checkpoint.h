#pragma once
// Hugging Face checkpoint directories: config.json plus model.safetensors or
// shards listed in model.safetensors.index.json.
#include <filesystem>
#include <optional>
#include <string>

#include "io/safetensors.h"
#include "model/weight_format_choice.h"

namespace thinkeys {

struct Model;  // model/weights.h

// `format`: what the streamed matrices are held as (model/weight_format.h);
// nullopt keeps the checkpoint's own dtype. 16-bit weights are never widened
// to f32 on the way unless f32 is asked for.
Model load_hf_checkpoint(const std::filesystem::path& dir,
                         std::optional<WeightFormat> format = WeightFormat::F32);

// Writes config.json and model.safetensors into `dir` (an existing, empty
// directory; callers make the whole directory appear atomically).
void write_hf_checkpoint(const Model& model, const std::filesystem::path& dir, DType dtype);

// The dtype to save a model in: "f32", "f16", "bf16", or "stored"/"" for the
// dtype its checkpoint came in (config.weight_dtype), so a bf16 model does
// not come out of compress or finetune twice its size.
DType dtype_for_saving(const std::string& choice, const ModelConfig& source);

}  // namespace thinkeys
