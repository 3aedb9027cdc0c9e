#pragma once
// One entry point for every checkpoint format.
#include <filesystem>

#include "io/safetensors.h"
#include "model/weights.h"

namespace thinkeys {

// A Hugging Face directory (or a file inside one), or a llama2.c .bin file.
Model load_model(const std::filesystem::path& path);

// Writes an HF-style directory (config.json + model.safetensors) atomically and
// copies tokenizer files found beside `tokenizer_source` (if given).
void save_model(const Model& model, const std::filesystem::path& dir, DType dtype,
                const std::filesystem::path& tokenizer_source = {});

}  // namespace thinkeys
