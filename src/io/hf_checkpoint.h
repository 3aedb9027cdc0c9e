#pragma once
// Hugging Face checkpoint directories: config.json plus model.safetensors or
// shards listed in model.safetensors.index.json.
#include <filesystem>

#include "io/safetensors.h"
#include "model/weights.h"

namespace thinkeys {

Model load_hf_checkpoint(const std::filesystem::path& dir);

// Writes config.json and model.safetensors into `dir` (an existing, empty
// directory; callers make the whole directory appear atomically).
void write_hf_checkpoint(const Model& model, const std::filesystem::path& dir, DType dtype);

// f32 tensor from a stored F32/F16/BF16 tensor; anything else is an error.
at::Tensor tensor_to_float(const TensorView& view, const std::string& where);

}  // namespace thinkeys
