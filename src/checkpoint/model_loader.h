#pragma once
// One entry point for every checkpoint format.
#include <filesystem>
#include <optional>

#include "io/safetensors.h"
#include "model/weight_format_choice.h"

namespace thinkeys {

struct Model;  // model/weights.h: a caller that holds the result includes it

// A Hugging Face directory (or a file inside one), or a llama2.c .bin file.
// `weights`: the format the streamed matrices are held in (f32 by default, as
// training and compression need; nullopt: as the checkpoint stores them).
Model load_model(const std::filesystem::path& path,
                 std::optional<WeightFormat> weights = WeightFormat::F32);

// Writes an HF-style directory (config.json + model.safetensors) atomically and
// copies tokenizer files found beside `tokenizer_source` (if given).
void save_model(const Model& model, const std::filesystem::path& dir, DType dtype,
                const std::filesystem::path& tokenizer_source = {});

}  // namespace thinkeys
